//! Continuous batching: answers decoded together in one batch equal each answer decoded alone,
//! and the engine service runs answers side by side without letting one client hold up another.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{sync_channel, Receiver};
use std::sync::Arc;
use std::time::{Duration, Instant};

use candle_core::{DType, Device};
use omnid::engine::embedded::load_embedded;
use omnid::engine::generate::{decode_step, generate, GenerateParams, Sequence};
use omnid::engine::model_dir::{DTypeChoice, LoadedModel};
use omnid::engine::sampling::SamplingParams;
use omnid::engine::service::{Delivery, EngineService, EventSink, Job, JobEvent, ServiceLimits, StdSink};
use omnid::metrics::Metrics;
use omnid::models::multimodal::MultimodalInputs;

fn text_inputs(ids: Vec<u32>) -> MultimodalInputs {
    MultimodalInputs { ids, ..Default::default() }
}

fn params(max_new_tokens: usize, sampling: SamplingParams) -> GenerateParams {
    GenerateParams { sampling, max_new_tokens, stop_ids: vec![] }
}

#[test]
fn answers_decoded_in_one_batch_equal_each_decoded_alone() {
    let lm = LoadedModel::open(&common::fixture_dir("omni_a"), DTypeChoice::parse("f32").unwrap(), &Device::Cpu)
        .expect("omni_a fixture");
    let sampled =
        SamplingParams { greedy: false, temperature: 0.8, top_k: 20, top_p: 0.9, repetition_penalty: 1.1, seed: 11 };
    // Different prompt lengths (different cache lengths and positions in one step), different
    // budgets (answers leave the batch at different steps), greedy and seeded sampling.
    let cases = [
        (vec![10u32, 11, 12, 13, 14], params(12, SamplingParams::default())),
        ((20..29).collect::<Vec<u32>>(), params(5, SamplingParams::default())),
        ((40..54).collect::<Vec<u32>>(), params(9, sampled)),
    ];
    let alone: Vec<Vec<u32>> = cases
        .iter()
        .map(|(ids, p)| generate(&lm.model, &text_inputs(ids.clone()), p, |_| true).unwrap().token_ids)
        .collect();

    let mut seqs: Vec<Sequence> = cases
        .iter()
        .map(|(ids, p)| Sequence::prefill(&lm.model, &text_inputs(ids.clone()), p, None).unwrap().0)
        .collect();
    let mut together = vec![Vec::new(); seqs.len()];
    let mut widest = 0;
    loop {
        for (s, out) in seqs.iter_mut().zip(&mut together) {
            if let Some(t) = s.next_token() {
                out.push(t);
            }
        }
        let mut step: Vec<&mut Sequence> = seqs.iter_mut().filter(|s| s.wants_step()).collect();
        if step.is_empty() {
            break;
        }
        widest = widest.max(step.len());
        decode_step(&lm.model, &mut step).unwrap();
    }
    assert_eq!(widest, 3, "all three answers shared steps");
    assert_eq!(together, alone);
    assert_eq!(together.iter().map(Vec::len).collect::<Vec<_>>(), [12, 5, 9]);
}

/// A client that never reads: always behind, until told it has left.
struct NeverReads {
    offered: Arc<std::sync::atomic::AtomicUsize>,
    left: Arc<AtomicBool>,
}

impl EventSink for NeverReads {
    fn try_send(&mut self, event: JobEvent) -> Delivery {
        self.offered.fetch_add(1, Ordering::Relaxed);
        if self.left.load(Ordering::Relaxed) {
            Delivery::Gone
        } else {
            Delivery::Full(event)
        }
    }
    fn send(&mut self, _: JobEvent) -> bool {
        panic!("the engine thread must never block on a client")
    }
}

fn job(ids: Vec<u32>, max_new_tokens: usize, sink: Box<dyn EventSink>) -> Job {
    Job {
        inputs: text_inputs(ids),
        params: params(max_new_tokens, SamplingParams::default()),
        speech: None,
        sink,
        received: Instant::now(),
    }
}

/// Events of one job until its end, with the time each arrived.
fn drain(rx: Receiver<JobEvent>) -> Vec<(Instant, JobEvent)> {
    let mut out = Vec::new();
    while let Ok(ev) = rx.recv_timeout(Duration::from_secs(60)) {
        let end = matches!(ev, JobEvent::Done(_) | JobEvent::Failed(_));
        out.push((Instant::now(), ev));
        if end {
            break;
        }
    }
    out
}

fn metric(m: &Metrics, name: &str) -> f64 {
    let text = m.render(0);
    let line = text.lines().find(|l| l.starts_with(&format!("{name} "))).unwrap_or_else(|| panic!("{name}: {text}"));
    line.rsplit(' ').next().unwrap().parse().unwrap()
}

#[test]
fn the_service_runs_answers_side_by_side_and_isolates_bad_ones() {
    let lm = Arc::new(load_embedded(DType::F32, &Device::Cpu).unwrap());
    let metrics = Arc::new(Metrics::default());
    let engine = EngineService::start(lm, ServiceLimits { queue_capacity: 8, max_batch: 4 }, metrics.clone()).unwrap();
    // Three long answers, a job that fails in its prompt pass, and a client that never reads.
    let mut receivers = Vec::new();
    for ids in [vec![10u32, 11, 12], vec![20, 21, 22, 23, 24], vec![30, 31]] {
        let (tx, rx) = sync_channel(4);
        engine.submit(job(ids, 150, Box::new(StdSink(tx)))).unwrap();
        receivers.push(rx);
    }
    let (bad_tx, bad_rx) = sync_channel(4);
    engine.submit(job(vec![], 10, Box::new(StdSink(bad_tx)))).unwrap();
    let offered = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let left = Arc::new(AtomicBool::new(false));
    engine
        .submit(job(vec![40, 41], 150, Box::new(NeverReads { offered: offered.clone(), left: left.clone() })))
        .unwrap();

    let runs: Vec<_> = std::thread::scope(|s| {
        let handles: Vec<_> = receivers.into_iter().map(|rx| s.spawn(move || drain(rx))).collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for run in &runs {
        match &run.last().unwrap().1 {
            JobEvent::Done(d) => assert_eq!(d.completion_tokens, 150),
            other => panic!("expected Done, got {other:?}"),
        }
    }
    // Side by side: every answer had its first text before any answer ended.
    let first_text_last = runs.iter().map(|r| r.iter().find(|(_, e)| matches!(e, JobEvent::Text(_))).unwrap().0).max();
    let first_end = runs.iter().map(|r| r.last().unwrap().0).min();
    assert!(first_text_last < first_end, "answers ran one after another");
    let (steps, rows) = (metric(&metrics, "omnid_decode_steps_total"), metric(&metrics, "omnid_decode_rows_total"));
    assert!(rows / steps > 2.0, "mean batch {rows}/{steps}");

    match drain(bad_rx).last().unwrap() {
        (_, JobEvent::Failed(m)) => assert!(m.contains("prompt is empty"), "{m}"),
        other => panic!("expected Failed, got {other:?}"),
    }
    // The client that never read was offered its first event and then nothing more: it sat out
    // the steps instead of making the engine wait or queue its answer.
    assert!(offered.load(Ordering::Relaxed) >= 1);
    let offered_before = offered.load(Ordering::Relaxed);
    std::thread::sleep(Duration::from_millis(50));
    assert!(offered.load(Ordering::Relaxed) - offered_before <= 20, "retries are paced, not a flood");
    left.store(true, Ordering::Relaxed);
    let t = Instant::now();
    drop(engine); // returns once every accepted job has ended
    assert!(t.elapsed() < Duration::from_secs(5), "a departed client's answer stops at once");
    assert_eq!(metric(&metrics, "omnid_engine_running"), 0.0);
}

#[test]
fn a_prompt_pass_in_chunks_equals_one_pass() {
    use omnid::engine::ask::{request_prompt, AskRequest, MediaRef};
    let lm = LoadedModel::open(&common::fixture_dir("omni_a"), DTypeChoice::parse("f32").unwrap(), &Device::Cpu)
        .expect("omni_a fixture");
    // An image (DeepStack rows fall inside some chunks and not others) and an audio clip.
    let req = AskRequest {
        system: None,
        media: vec![
            MediaRef::Image(common::fixture("omni_a/inputs/img_1.png")),
            MediaRef::Audio(common::fixture("omni_a/inputs/aud_short.wav")),
        ],
        prompt: "Describe both.".into(),
        use_audio_in_video: false,
        video_fps: 2.0,
        video_window: (0.0, None),
        sampling: SamplingParams::default(),
        max_new_tokens: 8,
        template_vars: Default::default(),
    };
    let inputs = request_prompt(&lm, &req).unwrap().inputs;
    let p = params(8, SamplingParams::default());
    let (mut whole, captured_whole) = Sequence::prefill(&lm.model, &inputs, &p, Some(2)).unwrap();
    let mut chunked = Sequence::start(&lm.model, &inputs, &p, Some(2)).unwrap();
    let mut chunks = 0;
    let captured_chunked = loop {
        chunks += 1;
        if let Some(c) = chunked.prefill_chunk(&lm.model, 7).unwrap() {
            break c;
        }
        assert!(chunked.is_prefilling() && chunked.next_token().is_none(), "no token before the prompt pass ends");
    };
    assert!(chunks > 3, "{} prompt rows in chunks of 7", inputs.ids.len());
    let (a, b) = (captured_whole.unwrap(), captured_chunked.unwrap());
    assert_eq!(a.dims(), b.dims());
    let diff = (a - b).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap();
    assert!(diff < 1e-4, "captured thinker states differ by {diff}");
    // The same tokens follow.
    let run = |s: &mut Sequence| {
        let mut out = Vec::new();
        while let Some(t) = s.next_token() {
            out.push(t);
            if s.wants_step() {
                decode_step(&lm.model, &mut [s]).unwrap();
            }
        }
        out
    };
    let (x, y) = (run(&mut whole), run(&mut chunked));
    assert_eq!(x, y);
    assert_eq!(x.len(), 8);
}

#[test]
fn batch_work_yields_a_slot_to_interactive_requests_and_a_cancelled_window_is_dropped() {
    use omnid::engine::service::BatchJob;
    let lm = Arc::new(load_embedded(DType::F32, &Device::Cpu).unwrap());
    let engine = EngineService::start(
        lm.clone(),
        ServiceLimits { queue_capacity: 8, max_batch: 4 },
        Arc::new(Metrics::default()),
    )
    .unwrap();
    let batch = |ids: Vec<u32>, tokens: usize, cancelled: bool| {
        let (tx, rx) = sync_channel(1024);
        let inputs = text_inputs(ids);
        let prepared = lm.model.prepare(&inputs).unwrap();
        let job = BatchJob {
            inputs,
            prepared,
            params: params(tokens, SamplingParams::default()),
            sink: Box::new(StdSink(tx)),
            received: Instant::now(),
            cancelled: Arc::new(AtomicBool::new(cancelled)),
        };
        engine.submit_batch(job).unwrap();
        std::thread::spawn(move || drain(rx))
    };
    // Three long batch answers and one already cancelled; with 4 slots at most 2 are batch work.
    let b: Vec<_> = (0..3).map(|i| batch((10 + i..20 + i).collect(), 300, false)).collect();
    let dropped = batch(vec![5, 6, 7], 300, true);
    std::thread::sleep(Duration::from_millis(100));
    // Two interactive requests: the slots batch work may not take are theirs at once.
    let interactive: Vec<_> = (0..2)
        .map(|i| {
            let (tx, rx) = sync_channel(1024);
            engine.submit(job((30 + i..40 + i).collect(), 8, Box::new(StdSink(tx)))).unwrap();
            std::thread::spawn(move || drain(rx))
        })
        .collect();
    let done_at = |events: &[(Instant, JobEvent)]| match events.last() {
        Some((t, JobEvent::Done(_))) => *t,
        other => panic!("the answer did not end well: {other:?}"),
    };
    let first_at = |events: &[(Instant, JobEvent)]| events.first().map(|(t, _)| *t).unwrap();
    let b: Vec<Vec<(Instant, JobEvent)>> = b.into_iter().map(|h| h.join().unwrap()).collect();
    let i: Vec<Vec<(Instant, JobEvent)>> = interactive.into_iter().map(|h| h.join().unwrap()).collect();
    let first_batch_done = done_at(&b[0]).min(done_at(&b[1]));
    for answer in &i {
        assert!(done_at(answer) < first_batch_done, "an interactive answer waited for batch work");
    }
    assert!(first_at(&b[2]) > first_batch_done, "a third batch answer ran while two did");
    assert!(dropped.join().unwrap().is_empty(), "a cancelled batch job produced events");
}
