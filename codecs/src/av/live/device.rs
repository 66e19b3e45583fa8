//! Finding FFmpeg's input devices and checking camera device nodes before FFmpeg opens them.

use std::path::Path;

use ffmpeg_next as ffmpeg;

/// Says clearly what FFmpeg would report as "No such file or directory" or "Invalid argument": that
/// nothing exists at `path`, or that it is not a Video4Linux device node (character device major 81).
pub(crate) fn check_camera_node(path: &Path) -> std::result::Result<(), String> {
    let meta = match std::fs::metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(format!("no camera at {}: the device does not exist", path.display()))
        }
        // Permission problems and the like are left to FFmpeg, whose error is explained on opening.
        Err(_) => return Ok(()),
    };
    #[cfg(target_os = "linux")]
    {
        use std::os::unix::fs::{FileTypeExt, MetadataExt};
        const V4L2_MAJOR: u64 = 81;
        // Linux's dev_t encoding (glibc's gnu_dev_major).
        let major = ((meta.rdev() >> 8) & 0xfff) | ((meta.rdev() >> 32) & !0xfff);
        if !meta.file_type().is_char_device() || major != V4L2_MAJOR {
            return Err(format!("{} is not a video capture device (not a Video4Linux device node)", path.display()));
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = meta;
    Ok(())
}

/// The input device called `name`, if this FFmpeg has it.
pub(crate) fn find_input_device(name: &str) -> Option<ffmpeg::Format> {
    let c_name = std::ffi::CString::new(name).ok()?;
    // SAFETY: `av_find_input_format` only reads the NUL-terminated name and returns a pointer to a static
    // format description (or null), valid for the life of the process. ffmpeg-next's device iterator is
    // avoided because it dereferences null on a build without any video input device.
    let format = unsafe { ffmpeg::ffi::av_find_input_format(c_name.as_ptr()) };
    if format.is_null() {
        return None;
    }
    // SAFETY: non-null and static, as above; `wrap` only stores the pointer.
    Some(ffmpeg::Format::Input(unsafe { ffmpeg::format::Input::wrap(format.cast_mut()) }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_devices_debian_builds() {
        crate::av::init();
        for name in ["lavfi", "x11grab", "v4l2"] {
            assert!(find_input_device(name).is_some_and(|f| f.name().contains(name)), "{name}");
        }
        assert!(find_input_device("no-such-device").is_none());
        assert!(find_input_device("nul\0byte").is_none());
    }

    #[test]
    fn camera_nodes_are_checked() {
        // Files of the test's own rather than system files that a machine may lack (/etc/hostname).
        let dir = std::env::temp_dir().join(format!("omnid-live-device-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("not-a-camera");
        std::fs::write(&file, b"plain file").unwrap();
        let missing = dir.join("video99");
        let err = check_camera_node(&missing).unwrap_err();
        assert_eq!(err, format!("no camera at {}: the device does not exist", missing.display()));
        // A character device of another driver (/dev/null is one on every Linux), a folder, a plain file.
        for not_v4l2 in [Path::new("/dev/null"), dir.as_path(), file.as_path()] {
            let err = check_camera_node(not_v4l2).unwrap_err();
            assert!(err.contains("is not a video capture device"), "{err}");
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
