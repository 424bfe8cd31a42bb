//! The terminal side of `kora top`: raw keyboard input so `q` works without
//! Enter, the alternate screen, and putting everything back on exit.

use std::io::{self, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

pub fn is_terminal(fd: i32) -> bool {
    // SAFETY: isatty only inspects the descriptor.
    unsafe { libc::isatty(fd) == 1 }
}

/// Rows and columns of the terminal on stdout, if it has a size.
pub fn size() -> Option<(usize, usize)> {
    // SAFETY: TIOCGWINSZ writes one winsize into the struct we pass.
    unsafe {
        let mut ws: libc::winsize = std::mem::zeroed();
        if libc::ioctl(libc::STDOUT_FILENO, libc::TIOCGWINSZ, &mut ws) == 0 && ws.ws_row > 0 {
            Some((ws.ws_row as usize, ws.ws_col as usize))
        } else {
            None
        }
    }
}

/// While alive: stdin in raw mode (if it is a terminal), the alternate
/// screen and a hidden cursor. Dropping it restores all three, also when
/// unwinding from a panic; SIGTERM, SIGHUP and SIGINT end the wait instead
/// of the process so that the drop runs.
pub struct Screen {
    saved: Option<libc::termios>,
    signalled: Arc<AtomicBool>,
}

impl Screen {
    pub fn enter() -> Screen {
        let saved = if is_terminal(libc::STDIN_FILENO) {
            // SAFETY: tcgetattr/tcsetattr on stdin with a termios we own.
            unsafe {
                let mut t: libc::termios = std::mem::zeroed();
                if libc::tcgetattr(libc::STDIN_FILENO, &mut t) == 0 {
                    let saved = t;
                    // ISIG off too: Ctrl-C then arrives as a byte we handle
                    // like q, so the terminal is always restored.
                    t.c_lflag &= !(libc::ICANON | libc::ECHO | libc::ISIG);
                    t.c_cc[libc::VMIN] = 0;
                    t.c_cc[libc::VTIME] = 0;
                    (libc::tcsetattr(libc::STDIN_FILENO, libc::TCSANOW, &t) == 0).then_some(saved)
                } else {
                    None
                }
            }
        } else {
            None
        };
        let signalled = Arc::new(AtomicBool::new(false));
        for sig in [libc::SIGTERM, libc::SIGHUP, libc::SIGINT] {
            let _ = signal_hook::flag::register(sig, signalled.clone());
        }
        let mut out = io::stdout();
        let _ = out.write_all(b"\x1b[?1049h\x1b[?25l");
        let _ = out.flush();
        Screen { saved, signalled }
    }

    /// Waits until `deadline` for a key; true when the user asked to quit
    /// (q, Q, Ctrl-C, Ctrl-D).
    pub fn wait_for_quit(&self, deadline: Instant) -> bool {
        loop {
            if self.signalled.load(Ordering::Relaxed) {
                return true;
            }
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            let timeout = (deadline - now).min(Duration::from_millis(100));
            if self.saved.is_none() {
                std::thread::sleep(timeout);
                continue;
            }
            let mut fds = libc::pollfd {
                fd: libc::STDIN_FILENO,
                events: libc::POLLIN,
                revents: 0,
            };
            // SAFETY: one pollfd, valid for the call.
            let ready = unsafe { libc::poll(&mut fds, 1, timeout.as_millis() as libc::c_int) };
            if ready <= 0 {
                continue;
            }
            let mut buf = [0u8; 64];
            // SAFETY: reads into our buffer, at most its length.
            let n = unsafe { libc::read(libc::STDIN_FILENO, buf.as_mut_ptr().cast(), buf.len()) };
            if n == 0 {
                // stdin closed: nobody can press q any more; keep refreshing.
                std::thread::sleep(timeout);
                continue;
            }
            if n > 0
                && buf[..n as usize]
                    .iter()
                    .any(|b| matches!(b, b'q' | b'Q' | 3 | 4))
            {
                return true;
            }
        }
    }
}

impl Drop for Screen {
    fn drop(&mut self) {
        let mut out = io::stdout();
        let _ = out.write_all(b"\x1b[?25h\x1b[?1049l");
        let _ = out.flush();
        if let Some(saved) = self.saved {
            // SAFETY: restores the settings read in enter().
            unsafe {
                libc::tcsetattr(libc::STDIN_FILENO, libc::TCSANOW, &saved);
            }
        }
    }
}
