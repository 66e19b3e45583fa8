//! The GUI agent against a real X server: Xvfb started by the test, and a small real X11
//! application the test runs on it (a window with a red button, a blue button and a text field
//! that takes the keyboard once clicked). The model is a scripted stand-in that looks at the
//! screenshot it was given, finds the controls by their colours, and answers with
//! `computer_use` calls on the 0–1000 grid, as Qwen3-VL does. The assertions are on the
//! application's own state: what it saw clicked, what it received typed. Every safety rule gets
//! its test (dry run, forbidden region, allowlist, step limit, refusals, stop), and the tiny real
//! Qwen3-VL checkpoint runs the loop end to end.

mod common;

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use image::RgbImage;
use omnid::agent::action::Tool;
use omnid::agent::executor::{Executor, X11Executor};
use omnid::agent::model::{AgentModel, Answer, AskError};
use omnid::agent::prompt::Turn;
use omnid::agent::runner::{run_agent, Confirm, RunConfig, RunEnd};
use omnid::agent::safety::Policy;
use omnid::agent::screen::Rect;
use omnid::agent::step_log::StepLog;
use x11rb::connection::Connection;
use x11rb::protocol::xproto::{self, ConnectionExt as _};
use x11rb::protocol::Event;
use x11rb::rust_connection::RustConnection;

fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("omnid-agent-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

// ---- Xvfb ----

/// An Xvfb server on a display it chose itself (`-displayfd`), killed on drop.
struct Xvfb {
    child: Child,
    display: String,
}

impl Xvfb {
    fn start() -> Xvfb {
        let mut child = Command::new("Xvfb")
            .args(["-displayfd", "1", "-screen", "0", "800x600x24", "-nolisten", "tcp", "-noreset"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("Xvfb is installed (Debian package xvfb)");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = tx.send(BufReader::new(stdout).read_line(&mut line).map(|_| line));
        });
        let number = rx.recv_timeout(Duration::from_secs(10)).expect("Xvfb reports its display").unwrap();
        let display = format!(":{}", number.trim());
        let deadline = Instant::now() + Duration::from_secs(10);
        while RustConnection::connect(Some(&display)).is_err() {
            assert!(Instant::now() < deadline, "Xvfb on {display} does not answer");
            std::thread::sleep(Duration::from_millis(50));
        }
        Xvfb { child, display }
    }
}

impl Drop for Xvfb {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// ---- the application under test ----

const RED: u32 = 0xd0_2020;
const DARK_RED: u32 = 0x60_0000;
const BLUE: u32 = 0x20_40d0;
const GREEN: u32 = 0x20_a020;
const YELLOW: u32 = 0xe0_c020;
const WHITE: u32 = 0xff_ffff;
/// The window's place on the screen, and its controls in window coordinates.
const WINDOW: (i16, i16, u16, u16) = (40, 30, 560, 400);
const RED_BUTTON: (i16, i16, u16, u16) = (40, 40, 140, 70);
const BLUE_BUTTON: (i16, i16, u16, u16) = (240, 40, 140, 70);
const FIELD: (i16, i16, u16, u16) = (40, 200, 400, 50);

fn inside((x, y, w, h): (i16, i16, u16, u16), px: i16, py: i16) -> bool {
    px >= x && py >= y && px < x + w as i16 && py < y + h as i16
}

#[derive(Debug, Default, Clone)]
struct AppState {
    /// Every button press the window received: (x, y, button), window coordinates.
    presses: Vec<(i16, i16, u8)>,
    red_clicks: usize,
    blue_clicks: usize,
    field_focused: bool,
    typed: String,
}

/// The application: its own connection and event loop on a thread.
struct App {
    display: String,
    window: xproto::Window,
    state: Arc<Mutex<AppState>>,
    done: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl App {
    fn start(display: &str) -> App {
        let (conn, screen) = RustConnection::connect(Some(display)).unwrap();
        let root = conn.setup().roots[screen].root;
        let win = conn.generate_id().unwrap();
        conn.create_window(
            x11rb::COPY_DEPTH_FROM_PARENT,
            win,
            root,
            WINDOW.0,
            WINDOW.1,
            WINDOW.2,
            WINDOW.3,
            0,
            xproto::WindowClass::INPUT_OUTPUT,
            0,
            &xproto::CreateWindowAux::new()
                .background_pixel(WHITE)
                // No window manager on Xvfb: the window places itself.
                .override_redirect(1)
                .event_mask(
                    xproto::EventMask::EXPOSURE | xproto::EventMask::BUTTON_PRESS | xproto::EventMask::KEY_PRESS,
                ),
        )
        .unwrap();
        conn.map_window(win).unwrap();
        conn.set_input_focus(xproto::InputFocus::PARENT, win, x11rb::CURRENT_TIME).unwrap();
        let (min, max) = (conn.setup().min_keycode, conn.setup().max_keycode);
        let map = conn.get_keyboard_mapping(min, max - min + 1).unwrap().reply().unwrap();
        let per = map.keysyms_per_keycode as usize;
        conn.flush().unwrap();
        let state = Arc::new(Mutex::new(AppState::default()));
        let done = Arc::new(AtomicBool::new(false));
        let (st, dn) = (state.clone(), done.clone());
        let thread = std::thread::spawn(move || {
            let gc = conn.generate_id().unwrap();
            conn.create_gc(gc, win, &xproto::CreateGCAux::new()).unwrap();
            let fill = |colour: u32, (x, y, w, h): (i16, i16, u16, u16)| {
                conn.change_gc(gc, &xproto::ChangeGCAux::new().foreground(colour)).unwrap();
                conn.poly_fill_rectangle(win, gc, &[xproto::Rectangle { x, y, width: w, height: h }]).unwrap();
            };
            let draw = |s: &AppState| {
                fill(if s.red_clicks > 0 { DARK_RED } else { RED }, RED_BUTTON);
                fill(BLUE, BLUE_BUTTON);
                fill(if s.field_focused { YELLOW } else { GREEN }, FIELD);
                // One black tick per typed character, so the screen shows the text's length.
                for i in 0..s.typed.chars().count().min(45) {
                    fill(0, (FIELD.0 + 6 + 8 * i as i16, FIELD.1 + 15, 5, 20));
                }
                conn.flush().unwrap();
            };
            while !dn.load(Ordering::Relaxed) {
                let event = match conn.poll_for_event() {
                    Ok(Some(e)) => e,
                    Ok(None) => {
                        std::thread::sleep(Duration::from_millis(5));
                        continue;
                    }
                    Err(_) => return,
                };
                let mut s = st.lock().unwrap();
                match event {
                    Event::Expose(_) => {}
                    Event::ButtonPress(e) => {
                        s.presses.push((e.event_x, e.event_y, e.detail));
                        if e.detail == 1 {
                            if inside(RED_BUTTON, e.event_x, e.event_y) {
                                s.red_clicks += 1;
                            }
                            if inside(BLUE_BUTTON, e.event_x, e.event_y) {
                                s.blue_clicks += 1;
                            }
                            s.field_focused = inside(FIELD, e.event_x, e.event_y);
                        }
                    }
                    Event::KeyPress(e) if s.field_focused => {
                        let shifted = u16::from(e.state) & u16::from(xproto::KeyButMask::SHIFT) != 0;
                        let syms = &map.keysyms[(e.detail - min) as usize * per..][..per];
                        let sym = if shifted && per > 1 && syms[1] != 0 { syms[1] } else { syms[0] };
                        if (0x20..0x7f).contains(&sym) {
                            s.typed.push(char::from_u32(sym).unwrap());
                        }
                    }
                    _ => continue,
                }
                draw(&s);
            }
        });
        let app = App { display: display.to_string(), window: win, state, done, thread: Some(thread) };
        // Drawn once mapped (the first Expose).
        std::thread::sleep(Duration::from_millis(200));
        app
    }

    fn state(&self) -> AppState {
        self.state.lock().unwrap().clone()
    }

    /// Moves the window (as a person dragging it would), from another connection.
    fn mover(&self) -> impl Fn(i32, i32) + Send + Sync + 'static {
        let (display, window) = (self.display.clone(), self.window);
        move |x, y| {
            let (conn, _) = RustConnection::connect(Some(&display)).unwrap();
            conn.configure_window(window, &xproto::ConfigureWindowAux::new().x(x).y(y)).unwrap();
            conn.get_input_focus().unwrap().reply().unwrap();
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for App {
    fn drop(&mut self) {
        self.done.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

// ---- the scripted model ----

fn rgb(c: u32) -> [u8; 3] {
    [(c >> 16) as u8, (c >> 8) as u8, c as u8]
}

/// The centre of the pixels of colour `c`, on the 0–1000 grid of `img`.
fn find(img: &RgbImage, c: u32) -> Option<(f64, f64)> {
    let want = rgb(c);
    let (mut n, mut sx, mut sy) = (0u64, 0u64, 0u64);
    for (x, y, p) in img.enumerate_pixels() {
        if p.0 == want {
            n += 1;
            sx += x as u64;
            sy += y as u64;
        }
    }
    (n > 0).then(|| {
        let (cx, cy) = (sx as f64 / n as f64 + 0.5, sy as f64 / n as f64 + 0.5);
        ((cx / img.width() as f64 * 1000.0).round(), (cy / img.height() as f64 * 1000.0).round())
    })
}

fn call(args: &str) -> String {
    format!("<tool_call>\n{{\"name\": \"computer_use\", \"arguments\": {args}}}\n</tool_call>")
}

/// Clicks the red button, then the field, types, and ends — each decided from the screenshot.
#[derive(Default)]
struct Scripted {
    /// Click the blue button first (to test forbidden regions: it keeps trying).
    insist_on_blue: bool,
    /// Never end (step limit test): keeps moving the mouse.
    never_end: bool,
    /// Answers given before the real ones (malformed output tests).
    garbage_first: Vec<String>,
    turns: Mutex<Vec<(usize, Vec<String>)>>,
    answered: AtomicUsize,
    /// Runs after the model decided step n (0-based), before the action happens.
    after_decide: Option<Box<dyn Fn(usize) + Send + Sync>>,
}

impl AgentModel for Scripted {
    fn decide(&self, turn: &Turn, _max: usize, _stop: &AtomicBool) -> Result<Answer, AskError> {
        self.turns.lock().unwrap().push((turn.screenshots.len(), turn.history.clone()));
        let n = self.answered.fetch_add(1, Ordering::SeqCst);
        let text = if let Some(g) = self.garbage_first.get(n) {
            g.clone()
        } else {
            let img = turn.screenshots.last().unwrap();
            if self.never_end {
                call(r#"{"action": "mouse_move", "coordinate": [500, 500]}"#)
            } else if self.insist_on_blue {
                let (x, y) = find(img, BLUE).unwrap();
                call(&format!(r#"{{"action": "left_click", "coordinate": [{x}, {y}]}}"#))
            } else if let Some((x, y)) = find(img, RED) {
                format!(
                    "I click the red button.\n{}",
                    call(&format!(r#"{{"action": "left_click", "coordinate": [{x}, {y}]}}"#))
                )
            } else if let Some((x, y)) = find(img, GREEN) {
                call(&format!(r#"{{"action": "left_click", "coordinate": [{x}, {y}]}}"#))
            } else if !turn.history.iter().any(|h| h.starts_with("type")) {
                call(r#"{"action": "type", "text": "Hello agent"}"#)
            } else {
                call(r#"{"action": "terminate", "status": "success"}"#)
            }
        };
        if let Some(hook) = &self.after_decide {
            hook(n);
        }
        Ok(Answer { text, ..Default::default() })
    }
}

fn config(policy: Policy) -> RunConfig {
    RunConfig {
        tool: Tool::ComputerUse,
        goal: "Press the red button, then type Hello agent".into(),
        policy,
        history_screens: 2,
        max_new_tokens: 64,
    }
}

fn quick() -> Policy {
    Policy { min_interval: Duration::from_millis(10), ..Policy::default() }
}

fn steps(log: &std::path::Path) -> Vec<serde_json::Value> {
    let mut out = Vec::new();
    for i in 1.. {
        let Ok(text) = std::fs::read_to_string(log.join(format!("step-{i:04}.json"))) else { break };
        out.push(serde_json::from_str(&text).unwrap());
    }
    out
}

// ---- tests ----

#[test]
fn the_agent_clicks_and_types_into_a_real_x11_application() {
    let x = Xvfb::start();
    let app = App::start(&x.display);
    let dir = scratch("drive");
    let mut exec = X11Executor::open(&x.display, None).unwrap();
    assert_eq!(exec.area(), Rect { x: 0, y: 0, width: 800, height: 600 });
    let model = Scripted::default();
    let mut log = StepLog::create(&dir, serde_json::json!({"test": true})).unwrap();
    let end = run_agent(&model, &mut exec, &config(quick()), &mut log, None, &AtomicBool::new(false));
    assert_eq!(end, RunEnd::Terminated { success: true });
    let s = app.state();
    assert_eq!((s.red_clicks, s.blue_clicks), (1, 0), "{s:?}");
    assert_eq!(s.typed, "Hello agent", "the application received the typed text");
    // The click landed within a pixel of the button's centre (window coordinates).
    let (px, py, button) = s.presses[0];
    assert_eq!(button, 1);
    assert!((px - 110).abs() <= 1 && (py - 75).abs() <= 1, "pressed at ({px}, {py})");
    // The log: 4 steps, all executed, screenshots and a timeline; the model saw its history.
    let st = steps(&dir);
    assert_eq!(st.iter().map(|s| s["outcome"].as_str().unwrap()).collect::<Vec<_>>(), ["executed"; 4]);
    assert_eq!(st[0]["action"]["kind"], "left_click");
    assert_eq!(st[0]["points"][0], serde_json::json!([150, 105]), "window (40, 30) + button centre (110, 75)");
    assert!(dir.join("step-0001.png").is_file() && dir.join("timeline.html").is_file());
    let run: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(dir.join("run.json")).unwrap()).unwrap();
    assert_eq!(run["ended"]["outcome"], "success");
    let turns = model.turns.lock().unwrap().clone();
    assert_eq!(
        turns.iter().map(|t| t.0).collect::<Vec<_>>(),
        [1, 2, 2, 2],
        "the current screenshot and the one before"
    );
    assert_eq!(turns[3].1[2], "type \"Hello agent\": done");
    let page = std::fs::read_to_string(dir.join("timeline.html")).unwrap();
    assert_eq!(page.matches("<section").count(), 4);
    assert!(page.contains("class=\"mark\""));
}

#[test]
fn a_window_that_moves_between_screenshot_and_click_is_found_again() {
    let x = Xvfb::start();
    let app = App::start(&x.display);
    let dir = scratch("moves");
    let mut exec = X11Executor::open(&x.display, None).unwrap();
    let mover = app.mover();
    // The window jumps right after the model chose its first click: the click hits the desktop.
    let model = Scripted {
        after_decide: Some(Box::new(move |n| {
            if n == 0 {
                mover(200, 150)
            }
        })),
        ..Scripted::default()
    };
    let mut log = StepLog::create(&dir, serde_json::json!({})).unwrap();
    let end = run_agent(&model, &mut exec, &config(quick()), &mut log, None, &AtomicBool::new(false));
    assert_eq!(end, RunEnd::Terminated { success: true });
    let s = app.state();
    assert_eq!((s.red_clicks, s.typed.as_str()), (1, "Hello agent"), "{s:?}");
    let st = steps(&dir);
    assert_eq!(st.len(), 5, "one more step than with a still window");
    // The second click went to the button's new place on the screen: (200, 150) + (110, 75).
    assert_eq!(st[1]["points"][0], serde_json::json!([310, 225]));
}

#[test]
fn actions_are_spaced_by_the_rate_limit() {
    let x = Xvfb::start();
    let _app = App::start(&x.display);
    let dir = scratch("rate");
    let mut exec = X11Executor::open(&x.display, None).unwrap();
    let model = Scripted { never_end: true, ..Scripted::default() };
    let mut log = StepLog::create(&dir, serde_json::json!({})).unwrap();
    let policy = Policy { max_steps: 3, min_interval: Duration::from_millis(400), ..Policy::default() };
    run_agent(&model, &mut exec, &config(policy), &mut log, None, &AtomicBool::new(false));
    let at: Vec<f64> = steps(&dir).iter().map(|s| s["executed_at_s"].as_f64().unwrap()).collect();
    assert_eq!(at.len(), 3);
    // Consecutive actions are at least 0.4 s apart (a lower bound; load only adds).
    for w in at.windows(2) {
        assert!(w[1] - w[0] >= 0.39, "steps at {at:?}");
    }
}

#[test]
fn ctrl_c_stops_the_command_and_the_log_says_so() {
    let x = Xvfb::start();
    let _app = App::start(&x.display);
    let dir = scratch("sigint");
    let mut child = Command::new(env!("CARGO_BIN_EXE_omnid"))
        .args(["agent", "--display", &x.display, "--goal", "Press the red button", "--max-steps", "200"])
        .args(["--max-tokens", "8", "--interval-ms", "10", "--log"])
        .arg(&dir)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let t0 = Instant::now();
    while !dir.join("step-0001.json").exists() {
        assert!(t0.elapsed() < Duration::from_secs(60), "no first step");
        std::thread::sleep(Duration::from_millis(20));
    }
    // SIGINT, as Ctrl-C sends it.
    assert!(Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap().success());
    let t1 = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(t1.elapsed() < Duration::from_secs(20), "still running after Ctrl-C");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(status.code(), Some(1));
    let run: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(dir.join("run.json")).unwrap()).unwrap();
    assert!(matches!(run["ended"]["outcome"].as_str(), Some("stopped" | "refused")), "{run}");
}

#[test]
fn a_dry_run_executes_nothing() {
    let x = Xvfb::start();
    let app = App::start(&x.display);
    let dir = scratch("dry");
    let mut exec = X11Executor::open(&x.display, None).unwrap();
    let model = Scripted { never_end: false, ..Scripted::default() };
    let mut log = StepLog::create(&dir, serde_json::json!({})).unwrap();
    let policy = Policy { dry_run: true, max_steps: 3, ..quick() };
    let end = run_agent(&model, &mut exec, &config(policy), &mut log, None, &AtomicBool::new(false));
    // Nothing happened on screen, so the stand-in keeps seeing the red button.
    assert_eq!(end, RunEnd::StepLimit);
    let s = app.state();
    assert!(s.presses.is_empty() && s.typed.is_empty(), "{s:?}");
    assert!(steps(&dir).iter().all(|s| s["outcome"] == "dry_run"));
}

#[test]
fn a_forbidden_region_is_never_clicked_and_refusals_end_the_run() {
    let x = Xvfb::start();
    let app = App::start(&x.display);
    let dir = scratch("forbid");
    let mut exec = X11Executor::open(&x.display, None).unwrap();
    let model = Scripted { insist_on_blue: true, ..Scripted::default() };
    let mut log = StepLog::create(&dir, serde_json::json!({})).unwrap();
    // The blue button on the screen: window (40, 30) + (240, 40), 140 × 70.
    let policy = Policy { forbidden: vec![Rect { x: 280, y: 70, width: 140, height: 70 }], ..quick() };
    let end = run_agent(&model, &mut exec, &config(policy), &mut log, None, &AtomicBool::new(false));
    assert_eq!(end, RunEnd::Refusals);
    assert!(app.state().presses.is_empty(), "{:?}", app.state());
    let st = steps(&dir);
    assert_eq!(st.len(), 5);
    assert!(st.iter().all(|s| s["outcome"] == "refused" && s["reason"].as_str().unwrap().contains("forbidden region")));
    // The model was told why, each time.
    let turns = model.turns.lock().unwrap().clone();
    assert!(
        turns[1].1[0].starts_with("refused: left_click at (350, 105) is inside a forbidden region"),
        "{:?}",
        turns[1].1
    );
}

#[test]
fn the_step_limit_the_allowlist_and_malformed_answers() {
    let x = Xvfb::start();
    let app = App::start(&x.display);
    // Step limit: a model that never ends gets exactly max_steps steps.
    let dir = scratch("limit");
    let mut exec = X11Executor::open(&x.display, None).unwrap();
    let model = Scripted { never_end: true, ..Scripted::default() };
    let mut log = StepLog::create(&dir, serde_json::json!({})).unwrap();
    let end = run_agent(
        &model,
        &mut exec,
        &config(Policy { max_steps: 3, ..quick() }),
        &mut log,
        None,
        &AtomicBool::new(false),
    );
    assert_eq!(end, RunEnd::StepLimit);
    assert_eq!(steps(&dir).len(), 3);
    assert_eq!(model.answered.load(Ordering::SeqCst), 3);

    // Malformed, unknown and off-screen answers are refused with a reason, then the model
    // recovers; only typing is allowed, so the click on the button is refused too.
    let dir = scratch("malformed");
    let model = Scripted {
        garbage_first: vec![
            "I would click the button.".into(),
            "<tool_call>{\"name\": \"computer_use\", \"arguments\": {\"action\": \"left_click\", \"coordinate\": [1200, 40]}}</tool_call>".into(),
            "<tool_call>{\"name\": \"computer_use\", \"arguments\": {\"action\": \"explode\"}}</tool_call>".into(),
            "<tool_call>{\"name\": \"computer_use\", \"arguments\": {\"action\": \"left_click\", \"coordinate\": [500, 500]}}</tool_call>".into(),
            "<tool_call>{\"name\": \"computer_use\", \"arguments\": {\"action\": \"terminate\", \"status\": \"failure\"}}</tool_call>".into(),
        ],
        ..Scripted::default()
    };
    let mut log = StepLog::create(&dir, serde_json::json!({})).unwrap();
    let policy = Policy { allow: Some(["type".to_string()].into()), ..quick() };
    let end = run_agent(&model, &mut exec, &config(policy), &mut log, None, &AtomicBool::new(false));
    assert_eq!(end, RunEnd::Terminated { success: false });
    let reasons: Vec<String> = steps(&dir).iter().take(4).map(|s| s["reason"].as_str().unwrap().to_string()).collect();
    assert!(reasons[0].contains("no tool call"), "{reasons:?}");
    assert!(reasons[1].contains("off the screen"), "{reasons:?}");
    assert!(reasons[2].contains("unknown action \"explode\""), "{reasons:?}");
    assert!(reasons[3].contains("left_click is not allowed"), "{reasons:?}");
    assert!(app.state().presses.is_empty(), "nothing refused was executed: {:?}", app.state());
}

/// Declines the first action, accepts the rest.
struct DeclineFirst(usize);

impl Confirm for DeclineFirst {
    fn confirm(&mut self, _step: usize, what: &str) -> bool {
        assert!(what.contains("→ screen ("), "{what}");
        self.0 += 1;
        self.0 > 1
    }
}

#[test]
fn confirmation_stop_and_a_display_that_goes_away() {
    let mut x = Xvfb::start();
    let app = App::start(&x.display);
    let mut exec = X11Executor::open(&x.display, None).unwrap();

    // --confirm: the declined click is not made; the next one is.
    let dir = scratch("confirm");
    let model = Scripted::default();
    let mut log = StepLog::create(&dir, serde_json::json!({})).unwrap();
    let mut person = DeclineFirst(0);
    let policy = Policy { confirm: true, max_steps: 2, ..quick() };
    let end = run_agent(&model, &mut exec, &config(policy), &mut log, Some(&mut person), &AtomicBool::new(false));
    assert_eq!(end, RunEnd::StepLimit);
    assert_eq!(
        steps(&dir).iter().map(|s| s["outcome"].as_str().unwrap().to_string()).collect::<Vec<_>>(),
        ["declined", "executed"]
    );
    assert_eq!(app.state().red_clicks, 1);

    // A stop set before the run: nothing happens.
    let dir = scratch("stop");
    let mut log = StepLog::create(&dir, serde_json::json!({})).unwrap();
    let end = run_agent(&Scripted::default(), &mut exec, &config(quick()), &mut log, None, &AtomicBool::new(true));
    assert_eq!(end, RunEnd::Stopped);
    assert!(steps(&dir).is_empty());

    // The display goes away mid-run: the loop stops with the reason.
    drop(app);
    let _ = x.child.kill();
    let _ = x.child.wait();
    let dir = scratch("gone");
    let mut log = StepLog::create(&dir, serde_json::json!({})).unwrap();
    let end = run_agent(&Scripted::default(), &mut exec, &config(quick()), &mut log, None, &AtomicBool::new(false));
    match end {
        RunEnd::Failed(m) => assert!(m.contains("screenshot failed") && m.contains(&x.display), "{m}"),
        other => panic!("{other:?}"),
    }
    let run: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(dir.join("run.json")).unwrap()).unwrap();
    assert_eq!(run["ended"]["outcome"], "failed");
}

#[test]
fn displays_and_devices_must_exist_and_be_named() {
    let err = |r: Result<X11Executor, String>| r.err().expect("an error");
    assert!(err(X11Executor::open("", None)).contains("name one explicitly"));
    assert!(err(X11Executor::open(":4999", None)).contains("X display :4999: cannot connect"));
    let x = Xvfb::start();
    assert!(err(X11Executor::open(&x.display, Some(3))).contains("--monitor 3 does not exist"));
    // The CLI refuses to run without a display, and adb without a device says so.
    let bin = env!("CARGO_BIN_EXE_omnid");
    let out = Command::new(bin).args(["agent", "--goal", "x"]).env("DISPLAY", &x.display).output().unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no display given"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out =
        Command::new(bin).args(["agent", "--goal", "x", "--mobile", "--adb", "/nonexistent/adb"]).output().unwrap();
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("is not installed"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let fake = scratch("adb").join("adb");
    std::fs::write(&fake, "#!/bin/sh\necho 'List of devices attached'\necho\n").unwrap();
    let mut perms = std::fs::metadata(&fake).unwrap().permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o755);
    std::fs::set_permissions(&fake, perms).unwrap();
    let out = Command::new(bin).args(["agent", "--goal", "x", "--mobile", "--adb"]).arg(&fake).output().unwrap();
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no Android device attached"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn the_tiny_real_model_runs_the_loop_end_to_end() {
    let x = Xvfb::start();
    let app = App::start(&x.display);
    let dir = scratch("real");
    let out = Command::new(env!("CARGO_BIN_EXE_omnid"))
        .args(["agent", "--model"])
        .arg(common::fixture_dir("vl_dense_a"))
        .args([
            "--display",
            &x.display,
            "--goal",
            "Press the red button",
            "--max-steps",
            "2",
            "--max-tokens",
            "16",
            "--interval-ms",
            "10",
            "--log",
        ])
        .arg(&dir)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "random weights never finish the task: {stderr}");
    // Whatever the random weights wrote was parsed, refused with a reason, and logged.
    let st = steps(&dir);
    assert_eq!(st.len(), 2, "{stderr}");
    for s in &st {
        assert!(!s["model_output"].as_str().unwrap().is_empty());
        assert_eq!(s["outcome"], "refused");
    }
    assert!(stderr.contains("the run ended: step_limit"), "{stderr}");
    assert!(app.state().presses.is_empty());
}

#[test]
fn one_monitor_of_several_and_the_stop_key() {
    let x = Xvfb::start();
    let app = App::start(&x.display);
    // Two monitors side by side (RandR 1.5 virtual monitors): left 0–399, right 400–799.
    for (name, geometry) in [("left", "400/100x600/100+0+0"), ("right", "400/100x600/100+400+0")] {
        let ok =
            Command::new("xrandr").args(["--display", &x.display, "--setmonitor", name, geometry, "none"]).status();
        assert!(ok.unwrap().success(), "xrandr (Debian x11-xserver-utils)");
    }
    let mut exec = X11Executor::open(&x.display, Some(1)).unwrap();
    assert_eq!(exec.area(), Rect { x: 400, y: 0, width: 400, height: 600 });
    assert_eq!(exec.capture().unwrap().dimensions(), (400, 600));
    // On the right monitor the red button is out of sight: the stand-in clicks the part of the
    // field it sees, which lies right of x = 400 on the screen only with the monitor's offset.
    let dir = scratch("monitor");
    let mut log = StepLog::create(&dir, serde_json::json!({})).unwrap();
    let end = run_agent(&Scripted::default(), &mut exec, &config(quick()), &mut log, None, &AtomicBool::new(false));
    assert_eq!(end, RunEnd::Terminated { success: true });
    let s = app.state();
    assert_eq!(s.typed, "Hello agent", "{s:?}");
    let (px, py, _) = s.presses[0];
    assert!(inside(FIELD, px, py) && px + WINDOW.0 >= 400, "pressed at window ({px}, {py})");

    // The stop key: Ctrl+Alt+Escape pressed on the display stops the run.
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicBool::new(false));
    let watcher = omnid::agent::x11::watch_stop_key(&x.display, stop.clone(), done.clone()).unwrap();
    let person = omnid::agent::x11::X11Display::connect(&x.display).unwrap();
    person.keys(&["ctrl".into(), "alt".into(), "Escape".into()]).unwrap();
    let t0 = Instant::now();
    while !stop.load(Ordering::Relaxed) {
        assert!(t0.elapsed() < Duration::from_secs(5), "the stop key was not seen");
        std::thread::sleep(Duration::from_millis(20));
    }
    done.store(true, Ordering::Relaxed);
    watcher.join().unwrap();
}

// ---- sessions over the daemon ----

fn http(method: &str, url: &str, body: Option<serde_json::Value>) -> (u16, String) {
    let agent = ureq::AgentBuilder::new().max_idle_connections(0).timeout(Duration::from_secs(60)).build();
    let req = agent.request(method, url);
    let res = match body {
        Some(b) => req.set("Content-Type", "application/json").send_string(&b.to_string()),
        None => req.call(),
    };
    match res {
        Ok(r) => (r.status(), r.into_string().unwrap()),
        Err(ureq::Error::Status(code, r)) => (code, r.into_string().unwrap()),
        Err(e) => panic!("{method} {url}: {e}"),
    }
}

#[test]
fn sessions_over_the_daemon_drive_only_the_displays_given() {
    let x = Xvfb::start();
    let app = App::start(&x.display);
    let dir = scratch("daemon");
    let config = dir.join("omnid.toml");
    std::fs::write(
        &config,
        format!("[agent]\ndisplays = [{:?}]\nlog_dir = {:?}\n", x.display, dir.join("logs").display().to_string()),
    )
    .unwrap();
    let server = common::Server::start(&["--config", config.to_str().unwrap()]);
    let url = format!("http://{}/v1/agent/sessions", server.addr);

    for (body, code, says) in [
        (serde_json::json!({"goal": "x", "display": ":4242"}), 403, "not one this daemon may drive"),
        (serde_json::json!({"goal": "x"}), 400, "display: missing"),
        (serde_json::json!({"display": x.display}), 400, "goal: missing"),
        (serde_json::json!({"goal": "x", "display": x.display, "colour": 1}), 400, "colour: unknown field"),
        (serde_json::json!({"goal": "x", "display": x.display, "allow": ["fly"]}), 400, "is not an action (key"),
        (serde_json::json!({"goal": "x", "display": x.display, "forbid": ["1,2"]}), 400, "X,Y,WIDTHxHEIGHT"),
        (serde_json::json!({"goal": "x", "display": x.display, "max_steps": 0}), 400, "from 1 to 200"),
    ] {
        let (status, text) = http("POST", &url, Some(body.clone()));
        assert_eq!(status, code, "{body} → {text}");
        assert!(text.contains(says), "{body} → {text}");
    }

    // A session of the embedded model (its text is noise: every step is refused with a reason).
    let (status, text) = http(
        "POST",
        &url,
        Some(
            serde_json::json!({"goal": "Press the red button", "display": x.display, "max_steps": 2, "interval_ms": 10, "max_tokens": 8}),
        ),
    );
    assert_eq!(status, 201, "{text}");
    let id = serde_json::from_str::<serde_json::Value>(&text).unwrap()["id"].as_str().unwrap().to_string();
    // One session per display at a time.
    let (status, text) = http("POST", &url, Some(serde_json::json!({"goal": "y", "display": x.display})));
    assert_eq!(status, 409, "{text}");
    let (status, events) = http("GET", &format!("{url}/{id}/events"), None);
    assert_eq!(status, 200);
    let names: Vec<&str> = events.lines().filter_map(|l| l.strip_prefix("event: ")).collect();
    assert_eq!(names, ["step", "step", "ended"], "{events}");
    assert!(events.contains("\"outcome\":\"refused\""), "{events}");
    let (_, view) = http("GET", &format!("{url}/{id}"), None);
    let view: serde_json::Value = serde_json::from_str(&view).unwrap();
    assert_eq!((view["state"].as_str(), view["outcome"].as_str()), (Some("ended"), Some("step_limit")));
    assert_eq!(view["steps"].as_array().unwrap().len(), 2);
    let shot = ureq::get(&format!("{url}/{id}/steps/1/screenshot")).call().unwrap();
    assert_eq!(shot.header("content-type"), Some("image/png"));
    let mut png = Vec::new();
    std::io::Read::read_to_end(&mut shot.into_reader(), &mut png).unwrap();
    assert_eq!(image::load_from_memory(&png).unwrap().width(), 800);
    assert!(dir.join("logs").join(&id).join("timeline.html").is_file());
    assert!(app.state().presses.is_empty());

    // A long session stops on DELETE.
    let (_, text) = http(
        "POST",
        &url,
        Some(
            serde_json::json!({"goal": "z", "display": x.display, "max_steps": 200, "interval_ms": 10, "max_tokens": 8}),
        ),
    );
    let id = serde_json::from_str::<serde_json::Value>(&text).unwrap()["id"].as_str().unwrap().to_string();
    let (status, _) = http("DELETE", &format!("{url}/{id}"), None);
    assert_eq!(status, 200);
    let t0 = Instant::now();
    loop {
        let (_, view) = http("GET", &format!("{url}/{id}"), None);
        let view: serde_json::Value = serde_json::from_str(&view).unwrap();
        if view["state"] == "ended" {
            assert!(matches!(view["outcome"].as_str(), Some("stopped" | "refused")), "{view}");
            assert!(view["steps"].as_array().unwrap().len() < 200);
            break;
        }
        assert!(t0.elapsed() < Duration::from_secs(20), "the session did not stop: {view}");
        std::thread::sleep(Duration::from_millis(50));
    }
    let (status, text) = http("GET", &format!("{url}/agent-nope"), None);
    assert_eq!(status, 404, "{text}");
}

#[test]
fn a_daemon_without_displays_runs_no_sessions() {
    let server = common::Server::start(&[]);
    let (status, text) = http(
        "POST",
        &format!("http://{}/v1/agent/sessions", server.addr),
        Some(serde_json::json!({"goal": "x", "display": ":0"})),
    );
    assert_eq!(status, 503, "{text}");
    assert!(text.contains("[agent] displays"), "{text}");
}

/// Taps what it sees in red through `mobile_use`, then types and ends.
struct PhoneScripted;

impl AgentModel for PhoneScripted {
    fn decide(&self, turn: &Turn, _max: usize, _stop: &AtomicBool) -> Result<Answer, AskError> {
        let call =
            |args: String| format!("<tool_call>\n{{\"name\": \"mobile_use\", \"arguments\": {args}}}\n</tool_call>");
        let text = match turn.history.len() {
            0 => {
                let (x, y) = find(turn.screenshots.last().unwrap(), RED).unwrap();
                call(format!(r#"{{"action": "click", "coordinate": [{x}, {y}]}}"#))
            }
            1 => call(r#"{"action": "swipe", "coordinate": [500, 800], "coordinate2": [500, 200]}"#.into()),
            2 => call(r#"{"action": "type", "text": "hi there"}"#.into()),
            3 => call(r#"{"action": "system_button", "button": "Back"}"#.into()),
            _ => call(r#"{"action": "terminate", "status": "success"}"#.into()),
        };
        Ok(Answer { text, ..Default::default() })
    }
}

#[test]
fn a_phone_is_driven_through_adb() {
    // A stand-in for adb: one device, a 400 × 800 screenshot with a red square at (300..340,
    // 600..640), and every input command written to a file.
    let dir = scratch("adb-phone");
    let mut screen = RgbImage::from_pixel(400, 800, image::Rgb([255, 255, 255]));
    for y in 600..640 {
        for x in 300..340 {
            screen.put_pixel(x, y, image::Rgb(rgb(RED)));
        }
    }
    screen.save(dir.join("screen.png")).unwrap();
    let calls = dir.join("calls.txt");
    let adb = dir.join("adb");
    std::fs::write(
        &adb,
        format!(
            "#!/bin/sh\ncase \"$*\" in\n  devices) printf 'List of devices attached\\nemu-1\\tdevice\\n' ;;\n  *screencap*) cat {} ;;\n  *) echo \"$*\" >> {} ;;\nesac\n",
            dir.join("screen.png").display(),
            calls.display()
        ),
    )
    .unwrap();
    let mut perms = std::fs::metadata(&adb).unwrap().permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o755);
    std::fs::set_permissions(&adb, perms).unwrap();

    let mut exec = omnid::agent::adb::AdbExecutor::open(adb.to_str().unwrap(), None).unwrap();
    assert_eq!(exec.area(), Rect { x: 0, y: 0, width: 400, height: 800 });
    let mut log = StepLog::create(&dir.join("log"), serde_json::json!({})).unwrap();
    let cfg = RunConfig { tool: Tool::MobileUse, ..config(quick()) };
    let end = run_agent(&PhoneScripted, &mut exec, &cfg, &mut log, None, &AtomicBool::new(false));
    assert_eq!(end, RunEnd::Terminated { success: true });
    let sent = std::fs::read_to_string(&calls).unwrap();
    let lines: Vec<&str> = sent.lines().collect();
    assert_eq!(
        lines,
        [
            "-s emu-1 shell input tap 320 620",
            "-s emu-1 shell input swipe 200 640 200 160 300",
            "-s emu-1 shell input text hi%sthere",
            "-s emu-1 shell input keyevent KEYCODE_BACK",
        ]
    );
    // Two devices without --serial is an error that lists them.
    std::fs::write(&adb, "#!/bin/sh\nprintf 'List of devices attached\\na\\tdevice\\nb\\tdevice\\n'\n").unwrap();
    let err = omnid::agent::adb::AdbExecutor::open(adb.to_str().unwrap(), None).err().unwrap();
    assert!(err.contains("2 devices attached: choose one with --serial (a, b)"), "{err}");
}
