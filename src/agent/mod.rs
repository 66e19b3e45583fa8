//! The GUI agent: Qwen3-VL sees a screen and drives its mouse and keyboard (an X11 display
//! through XTEST) or a phone (through adb), one step at a time, within rules a person set: an
//! allowlist of actions, regions never touched, a step limit, a rate limit, a dry run, a
//! confirmation per action, and a stop (Ctrl-C, a hotkey) that ends the run at once. Every step
//! is logged for review.
//!
//! | module | job |
//! |---|---|
//! | [`action`] | the model's answer as one typed action, or why not |
//! | [`prompt`] | the tool declaration and each step's turn (goal, steps so far, screenshots) |
//! | [`model`] | what the agent needs of a model; the loaded model through the engine |
//! | [`screen`] | the 0–1000 grid mapped to the screen's pixels, monitors' offsets included |
//! | [`safety`] | the run's rules, checked before anything moves |
//! | [`executor`] | where actions happen: the X11 executor |
//! | [`x11`] | an X display: screenshots, XTEST input, the keyboard map, the stop hotkey |
//! | [`keys`] | key names and characters as keysyms |
//! | [`adb`] | an Android device through adb |
//! | [`runner`] | the loop |
//! | [`step_log`] | the review folder: screenshots, steps, the HTML timeline |

pub mod action;
pub mod adb;
pub mod executor;
pub mod keys;
pub mod model;
pub mod prompt;
pub mod runner;
pub mod safety;
pub mod screen;
pub mod step_log;
pub mod x11;
