//! Video jobs end to end on the embedded tiny model: `omnid analyze` (with a resumable `--db`),
//! and the daemon's `/v1/jobs` — upload and server-path jobs, progress as SSE, results in every
//! format, every refusal with its status, an interactive request answered while a job runs, and
//! a daemon killed with SIGKILL mid-job that, restarted, finishes the job with every window
//! stored exactly once and only the interrupted one run twice.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::Server;
use serde_json::{json, Value};

fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("omnid-jobs-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// A `seconds`-long 64x48 clip with a tone, a key frame every 2 s.
fn clip(dir: &Path, seconds: u32) -> PathBuf {
    let path = dir.join(format!("clip{seconds}.mp4"));
    common::ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        &format!("testsrc=size=64x48:rate=10:duration={seconds}"),
        "-f",
        "lavfi",
        "-i",
        &format!("sine=frequency=300:duration={seconds}"),
        "-c:v",
        "libx264",
        "-g",
        "20",
        "-pix_fmt",
        "yuv420p",
        "-c:a",
        "aac",
        "-shortest",
        path.to_str().unwrap(),
    ]);
    path
}

/// One HTTP call; (status, body).
fn call(method: &str, url: &str, body: Option<(&str, &[u8])>) -> (u16, String) {
    let req = ureq::request(method, url).timeout(Duration::from_secs(120));
    let res = match body {
        Some((ct, bytes)) => req.set("Content-Type", ct).send_bytes(bytes),
        None => req.call(),
    };
    match res {
        Ok(r) => (r.status(), r.into_string().unwrap()),
        Err(ureq::Error::Status(code, r)) => (code, r.into_string().unwrap()),
        Err(e) => panic!("{method} {url}: {e}"),
    }
}

fn json_of(s: &str) -> Value {
    serde_json::from_str(s).unwrap_or_else(|e| panic!("not JSON ({e}): {s}"))
}

fn job(server: &Server, id: &str) -> Value {
    let (status, body) = call("GET", &format!("http://{}/v1/jobs/{id}", server.addr), None);
    assert_eq!(status, 200, "{body}");
    json_of(&body)
}

/// Polls job `id` until `done(job)` (or panics after `limit`).
fn wait_for(server: &Server, id: &str, limit: Duration, done: impl Fn(&Value) -> bool) -> Value {
    let t0 = Instant::now();
    loop {
        let j = job(server, id);
        if done(&j) {
            return j;
        }
        assert!(t0.elapsed() < limit, "job {id} did not get there in {limit:?}: {j}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn ended(j: &Value) -> bool {
    !matches!(j["state"].as_str(), Some("queued" | "running"))
}

fn upload(server: &Server, query: &str, video: &[u8]) -> (u16, Value) {
    let (status, body) = call("POST", &format!("http://{}/v1/jobs?{query}", server.addr), Some(("video/mp4", video)));
    (status, json_of(&body))
}

#[test]
fn a_daemon_killed_mid_job_resumes_it_with_every_window_exactly_once() {
    let dir = scratch("kill");
    let video = std::fs::read(clip(&dir, 40)).unwrap();
    let jobs_dir = dir.join("state");
    let jobs_arg = jobs_dir.to_str().unwrap();
    let server = Server::start(&["--jobs-dir", jobs_arg]);
    let (status, created) =
        upload(&server, "task=describe%20the%20scene&window=3&overlap=0.5&max_tokens=24&name=clip.mp4", &video);
    assert_eq!(status, 201, "{created}");
    let id = created["id"].as_str().unwrap().to_string();
    assert!(matches!(created["state"].as_str(), Some("queued" | "running")), "{created}");
    assert_eq!(created["video"], "clip.mp4");
    let before = wait_for(&server, &id, Duration::from_secs(120), |j| j["windows_done"].as_u64() >= Some(3));
    let total = before["windows_total"].as_u64().unwrap();
    assert_eq!(total, 16, "40 s in 3 s windows overlapping 0.5 s: {before}");

    // An interactive request while the job runs is answered without waiting for the job.
    let (status, chat) = call(
        "POST",
        &format!("http://{}/v1/chat/completions", server.addr),
        Some((
            "application/json",
            json!({"messages": [{"role": "user", "content": "hi"}], "max_tokens": 4}).to_string().as_bytes(),
        )),
    );
    assert_eq!(status, 200, "{chat}");
    assert_eq!(job(&server, &id)["state"], "running", "the chat answer did not wait for the whole job");

    drop(server); // SIGKILL, mid-job
    let server = Server::start(&["--jobs-dir", jobs_arg]);
    let done = wait_for(&server, &id, Duration::from_secs(300), ended);
    assert_eq!(done["state"], "done", "{done}");
    let windows = done["windows"].as_array().unwrap();
    let indices: Vec<u64> = windows.iter().map(|w| w["index"].as_u64().unwrap()).collect();
    assert_eq!(indices, (0..total).collect::<Vec<_>>(), "every window stored exactly once");
    let attempts: Vec<u64> = windows.iter().map(|w| w["attempts"].as_u64().unwrap()).collect();
    let done_before = before["windows_done"].as_u64().unwrap() as usize;
    assert!(
        attempts[..done_before].iter().all(|&a| a == 1),
        "windows finished before the kill never ran again: {attempts:?}"
    );
    assert!(attempts.iter().filter(|&&a| a == 2).count() <= 1 && attempts.iter().all(|&a| a <= 2), "{attempts:?}");
    for w in windows {
        assert!(w["frames"].as_u64().unwrap() >= 4 && w["prompt_tokens"].as_u64().unwrap() > 0, "{w}");
    }
    // The result in every format (the random model writes no timed lines: no events, but its
    // text is kept as notes, never dropped).
    let base = format!("http://{}/v1/jobs/{id}/result", server.addr);
    let (status, result) = call("GET", &base, None);
    assert_eq!(status, 200);
    let result = json_of(&result);
    assert_eq!((result["windows"].as_u64(), result["video"].as_str()), (Some(total), Some("clip.mp4")));
    let kept = result["events"].as_array().unwrap().len() + result["notes"].as_array().unwrap().len();
    assert!(kept > 0, "the model's text is in the result: {result}");
    let (_, vtt) = call("GET", &format!("{base}?format=vtt"), None);
    assert!(vtt.starts_with("WEBVTT"), "{vtt}");
    let (_, md) = call("GET", &format!("{base}?format=md"), None);
    assert!(md.starts_with("# clip.mp4\n\n**Task:** describe the scene"), "{md}");
    let (status, bad) = call("GET", &format!("{base}?format=docx"), None);
    assert_eq!(status, 400, "{bad}");
    // An ended job is deleted with its upload.
    let uploads = jobs_dir.join("uploads");
    assert_eq!(std::fs::read_dir(&uploads).unwrap().count(), 1);
    let (status, deleted) = call("DELETE", &format!("http://{}/v1/jobs/{id}", server.addr), None);
    assert_eq!((status, json_of(&deleted)["deleted"].as_bool()), (200, Some(true)));
    assert_eq!(std::fs::read_dir(&uploads).unwrap().count(), 0);
    assert_eq!(call("GET", &format!("http://{}/v1/jobs/{id}", server.addr), None).0, 404);
}

#[test]
fn jobs_by_path_progress_events_cancel_and_every_refusal() {
    let dir = scratch("api");
    let media = dir.join("media");
    std::fs::create_dir_all(&media).unwrap();
    let video = clip(&media, 6);
    let cfg = dir.join("omnid.toml");
    std::fs::write(
        &cfg,
        format!("[jobs]\nmedia_dirs = [{:?}]\nmax_upload_bytes = 200000\nworkers = 2\n", media.display().to_string()),
    )
    .unwrap();
    let server = Server::start(&["--config", cfg.to_str().unwrap()]);
    let url = format!("http://{}/v1/jobs", server.addr);
    let post_json = |v: Value| {
        let (s, b) = call("POST", &url, Some(("application/json", v.to_string().as_bytes())));
        (s, json_of(&b))
    };

    // A job naming a file in media_dirs; its progress streams as SSE until it ends.
    let (status, created) = post_json(
        json!({"video": video, "task": "what is shown?", "window": 2, "overlap": 0, "max_tokens": 8, "summarize": true}),
    );
    assert_eq!(status, 201, "{created}");
    let id = created["id"].as_str().unwrap();
    let (status, events) = call("GET", &format!("{url}/{id}/events"), None);
    assert_eq!(status, 200);
    let names: Vec<&str> = events.lines().filter_map(|l| l.strip_prefix("event: ")).collect();
    assert_eq!(names.last(), Some(&"done"), "{events}");
    let last = events.lines().rev().find_map(|l| l.strip_prefix("data: ")).unwrap();
    let last = json_of(last);
    assert_eq!((last["windows_done"].as_u64(), last["windows_total"].as_u64()), (Some(3), Some(3)));
    assert!(last["summary"].is_string(), "the summary pass ran: {last}");
    let (status, list) = call("GET", &url, None);
    assert_eq!((status, json_of(&list)["data"][0]["id"].as_str()), (200, Some(id)));

    // Refusals, each with its status and the field named.
    let refusals: [(Value, u16, &str); 7] = [
        (json!({"video": "/etc/passwd", "task": "x"}), 403, "outside the folders jobs may read"),
        // Outside the folders, a missing file is refused the same way: existence is not revealed.
        (json!({"video": "/nonexistent/secret.mp4", "task": "x"}), 403, "outside the folders jobs may read"),
        (json!({"video": "relative.mp4", "task": "x"}), 400, "give an absolute path"),
        (json!({"video": media.join("nope.mp4"), "task": "x"}), 400, "no such file"),
        (json!({"video": video, "task": ""}), 400, "task: it is empty"),
        (json!({"video": video, "task": "x", "fps": "fast"}), 400, "fps: expected a number"),
        (json!({"video": video, "task": "x", "colour": 1}), 400, "colour: unknown field"),
    ];
    for (body, want, says) in refusals {
        let (status, err) = post_json(body.clone());
        assert_eq!(status, want, "{body} → {err}");
        assert!(err["error"]["message"].as_str().unwrap().contains(says), "{body} → {err}");
    }
    let big = vec![0u8; 300_000];
    let (status, err) = call("POST", &format!("{url}?task=x"), Some(("video/mp4", &big)));
    assert_eq!(status, 413, "{err}");
    assert!(err.contains("max_upload_bytes"), "{err}");
    let (status, err) = call("POST", &format!("{url}?task=x"), Some(("video/mp4", b"")));
    assert_eq!(status, 400, "{err}");
    let (status, err) = call("GET", &format!("{url}/job_0000000000000000"), None);
    assert_eq!(status, 404, "{err}");
    assert_eq!(call("DELETE", &format!("{url}/job_0000000000000000"), None).0, 404);

    // A corrupt upload fails its own job with the reason; a good one next to it completes.
    let (status, broken) = upload(&server, "task=x&name=broken.mp4", b"this is not a video");
    assert_eq!(status, 201);
    let (status, good) = upload(&server, "task=x&window=3&overlap=0&max_tokens=4", &std::fs::read(&video).unwrap());
    assert_eq!(status, 201);
    let broken = wait_for(&server, broken["id"].as_str().unwrap(), Duration::from_secs(60), ended);
    assert_eq!(broken["state"], "failed");
    assert!(broken["error"].as_str().unwrap().contains("cannot open as media"), "{broken}");
    let good = wait_for(&server, good["id"].as_str().unwrap(), Duration::from_secs(120), ended);
    assert_eq!(good["state"], "done", "{good}");

    // Cancel: a long job stops and keeps what it finished.
    let long = clip(&media, 30);
    let (_, created) = post_json(json!({"video": long, "task": "x", "window": 2, "overlap": 0, "max_tokens": 32}));
    let id = created["id"].as_str().unwrap();
    wait_for(&server, id, Duration::from_secs(60), |j| j["windows_done"].as_u64() >= Some(1));
    let (status, c) = call("DELETE", &format!("{url}/{id}"), None);
    assert_eq!(status, 200, "{c}");
    let j = wait_for(&server, id, Duration::from_secs(30), ended);
    assert_eq!(j["state"], "cancelled");
    assert!(j["windows_done"].as_u64().unwrap() < j["windows_total"].as_u64().unwrap());
}

#[test]
fn omnid_analyze_writes_every_format_and_a_db_run_is_never_recomputed() {
    let dir = scratch("cli");
    let video = clip(&dir, 8);
    let db = dir.join("jobs.sqlite");
    let out = dir.join("result.srt");
    let run = |extra: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_omnid"))
            .args([
                "analyze",
                video.to_str().unwrap(),
                "--task",
                "what is shown?",
                "--window",
                "3",
                "--max-tokens",
                "8",
            ])
            .args(["--db", db.to_str().unwrap()])
            .args(extra)
            .env_remove("RUST_BACKTRACE")
            .output()
            .unwrap()
    };
    let first = run(&["--format", "srt", "--out", out.to_str().unwrap(), "--timings"]);
    let stderr = String::from_utf8_lossy(&first.stderr);
    assert!(first.status.success(), "{stderr}");
    assert!(
        stderr.contains("4 windows of 3.0 s (0 already done)") && stderr.contains("timings: 4 windows"),
        "{stderr}"
    );
    assert!(out.exists());
    // Same job again: the stored result, nothing recomputed, in another format.
    let again = run(&["--format", "json"]);
    let stderr = String::from_utf8_lossy(&again.stderr);
    assert!(again.status.success() && stderr.contains("was finished earlier"), "{stderr}");
    let result = json_of(&String::from_utf8_lossy(&again.stdout));
    assert_eq!(result["windows"], 4);
    // A Qwen3-VL checkpoint (absolute time base) runs the same job.
    let vl = Command::new(env!("CARGO_BIN_EXE_omnid"))
        .args(["analyze", video.to_str().unwrap(), "--task", "what is shown?", "--window", "3", "--max-tokens", "8"])
        .args(["--model", &common::fixture("vl_dense_a"), "--format", "json"])
        .env_remove("RUST_BACKTRACE")
        .output()
        .unwrap();
    assert!(vl.status.success(), "{}", String::from_utf8_lossy(&vl.stderr));
    assert_eq!(json_of(&String::from_utf8_lossy(&vl.stdout))["windows"], 4);
    // Bad input: a clear error, no panic.
    let o = Command::new(env!("CARGO_BIN_EXE_omnid"))
        .args(["analyze", video.to_str().unwrap(), "--task", "x", "--from", "0:20"])
        .env_remove("RUST_BACKTRACE")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && stderr.contains("no frames in the requested range"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn sigterm_with_a_progress_stream_open_stops_promptly_and_the_job_waits_for_the_next_start() {
    let dir = scratch("term");
    let video = std::fs::read(clip(&dir, 40)).unwrap();
    let jobs_dir = dir.join("state");
    let jobs_arg = jobs_dir.to_str().unwrap();
    let mut server = Server::start(&["--jobs-dir", jobs_arg]);
    let (status, created) = upload(&server, "task=x&window=2&overlap=0&max_tokens=24", &video);
    assert_eq!(status, 201, "{created}");
    let id = created["id"].as_str().unwrap().to_string();
    wait_for(&server, &id, Duration::from_secs(60), |j| j["windows_done"].as_u64() >= Some(1));
    // A client follows the job's progress (the stream would last as long as the job).
    let url = format!("http://{}/v1/jobs/{id}/events", server.addr);
    let follower = std::thread::spawn(move || call("GET", &url, None));
    std::thread::sleep(Duration::from_millis(300));
    let pid = server.child.id().to_string();
    assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    let t0 = Instant::now();
    let exit = loop {
        if let Some(status) = server.child.try_wait().unwrap() {
            break status;
        }
        assert!(t0.elapsed() < Duration::from_secs(30), "the daemon did not stop with a progress stream open");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(exit.success(), "{exit:?}");
    let (status, events) = follower.join().unwrap();
    assert_eq!(status, 200);
    assert!(events.contains("event: progress") && !events.contains("event: done"), "{events}");
    // The job was left queued with its finished windows; the next start finishes it.
    let server = Server::start(&["--jobs-dir", jobs_arg]);
    let done = wait_for(&server, &id, Duration::from_secs(300), ended);
    assert_eq!(done["state"], "done", "{done}");
    assert_eq!(done["windows"].as_array().unwrap().len() as u64, done["windows_total"].as_u64().unwrap());
}
