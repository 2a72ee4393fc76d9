//! Server processes that cannot outlive the test process.
//!
//! Each server runs under a small `sh` script that holds the read end of a pipe whose write end belongs to the test
//! process. When the test process exits, however it exits, the script's `read` returns and it stops the server and
//! removes its files. This replaces `Drop`, which never runs for the per-process servers kept in statics.

use std::{
    collections::BTreeSet,
    io::{BufRead, BufReader, ErrorKind, Lines, Write},
    net::TcpListener,
    os::unix::process::CommandExt,
    path::Path,
    process::{Child, ChildStdin, ChildStdout, Command, Stdio},
    sync::Mutex,
};

/// Shell lines that make a private CA and a certificate for 127.0.0.1/localhost in the current directory
/// (`ca.crt`, `server.crt`, `server.key`), so TLS modes can be tested against the private servers for real.
pub(crate) const MAKE_TLS_CERTS: &str = r#"
key="-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes"
openssl req -x509 $key -days 2 -subj /CN=rotapool-test-ca -keyout ca.key -out ca.crt 2>>server.log
openssl req $key -subj /CN=localhost -keyout server.key -out server.csr 2>>server.log
printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n' >server.ext
openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 2 -extfile server.ext \
    -out server.crt 2>>server.log
chmod 600 server.key
"#;

/// A running supervisor script. Dropping it (or exiting) stops the server.
///
/// Scripts print `ready` once the server serves, then read commands, one a line, from the lifeline: `restart`
/// restarts the server in place (same data, same port) and prints `ready` again.
#[derive(Debug)]
pub(crate) struct Supervised {
    child: Child,
    log: std::path::PathBuf,
    /// `None` once dropped.
    lifeline: Mutex<Option<ChildStdin>>,
    said: Mutex<Lines<BufReader<ChildStdout>>>,
}

impl Supervised {
    /// Runs `script` with `args` under `sh`, as `uid`/`gid` if given, and waits for it to print `ready`.
    /// On failure the panic message carries the script's output and the contents of `log`.
    pub(crate) fn start(
        what: &str,
        script: &str,
        args: &[&str],
        user: Option<(u32, u32)>,
        log: &Path,
    ) -> Self {
        let mut command = Command::new("sh");
        command
            .arg("-c")
            .arg(script)
            .arg("sh")
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        if let Some((uid, gid)) = user {
            command.uid(uid).gid(gid);
        }
        let mut child = command
            .spawn()
            .unwrap_or_else(|e| panic!("could not run sh to start {what}: {e}"));
        let lifeline = child.stdin.take().expect("stdin is piped");
        let stdout = child.stdout.take().expect("stdout is piped");
        let mut lines = BufReader::new(stdout).lines();
        let mut said = String::new();
        for line in lines.by_ref() {
            let line = line.unwrap_or_default();
            if line == "ready" {
                return Self {
                    child,
                    log: log.to_owned(),
                    lifeline: Mutex::new(Some(lifeline)),
                    said: Mutex::new(lines),
                };
            }
            said.push_str(&line);
            said.push('\n');
        }
        let status = child.wait().map(|s| s.to_string()).unwrap_or_default();
        let log_text = std::fs::read_to_string(log).unwrap_or_default();
        panic!(
            "{what} did not start ({status}).\nscript output:\n{said}\nlog {}:\n{log_text}",
            log.display()
        );
    }
}

impl Supervised {
    /// Sends `command` to the script and waits until it prints `ready` again; panics with what it printed if it
    /// does not. Blocks the thread: call it through `tokio::task::block_in_place` from async code.
    pub(crate) fn command(&self, what: &str, command: &str) {
        let mut lifeline = self.lifeline.lock().unwrap_or_else(|e| e.into_inner());
        let lifeline = lifeline
            .as_mut()
            .expect("the lifeline is closed only on drop");
        writeln!(lifeline, "{command}")
            .and_then(|()| lifeline.flush())
            .unwrap_or_else(|e| panic!("could not send `{command}` to {what}: {e}"));
        let mut said = String::new();
        for line in self.said.lock().unwrap_or_else(|e| e.into_inner()).by_ref() {
            let line = line.unwrap_or_default();
            if line == "ready" {
                return;
            }
            said.push_str(&line);
            said.push('\n');
        }
        panic!("{what} did not come back from `{command}`; it said:\n{said}");
    }
}

impl Supervised {
    /// What the server has logged so far (the log file given to [`Supervised::start`]).
    pub(crate) fn log(&self) -> String {
        std::fs::read_to_string(&self.log)
            .unwrap_or_else(|e| panic!("the server log {}: {e}", self.log.display()))
    }
}

impl Drop for Supervised {
    fn drop(&mut self) {
        // Closing the lifeline tells the script to stop; wait so that the server is gone on return.
        drop(
            self.lifeline
                .get_mut()
                .unwrap_or_else(|e| e.into_inner())
                .take(),
        );
        let _ = self.child.wait();
    }
}

/// A TCP port on 127.0.0.1 that was free a moment ago and that this process has not handed out before: the
/// kernel may give a port it just took back to the next caller, and two servers starting at once must not get the
/// same one. Tests that start a server of their own (a service under test, say) take its port from here too, so
/// that it cannot collide with a test server's.
pub fn free_port() -> u16 {
    static HANDED_OUT: Mutex<BTreeSet<u16>> = Mutex::new(BTreeSet::new());
    loop {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("the loopback interface accepts a listener on port 0");
        let mut handed_out = HANDED_OUT.lock().unwrap_or_else(|e| e.into_inner());
        if handed_out.insert(port) {
            return port;
        }
    }
}

/// Database servers refuse to run as root: when this process is root, the uid and gid of the system user
/// `name`, which the Debian package `package` creates; otherwise `None` (run as ourselves).
pub(crate) fn unprivileged_user(name: &str, package: &str) -> Option<(u32, u32)> {
    let root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.trim_ascii() == b"0");
    root.then(|| {
        system_user(name).unwrap_or_else(|| {
            panic!("running as root, the private server needs the `{name}` system user (apt-get install {package})")
        })
    })
}

/// The uid and gid of `name` from /etc/passwd.
fn system_user(name: &str) -> Option<(u32, u32)> {
    let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
    passwd.lines().find_map(|line| {
        let fields: Vec<&str> = line.split(':').collect();
        (fields.first() == Some(&name) && fields.len() > 3)
            .then(|| Some((fields[2].parse().ok()?, fields[3].parse().ok()?)))
            .flatten()
    })
}

/// A new, empty directory under the system temp dir, owned by `user` when given; never one that another server
/// of this process, or a process before it with the same PID, uses.
pub(crate) fn scratch_dir(prefix: &str, user: Option<(u32, u32)>) -> std::path::PathBuf {
    let dir = loop {
        let serial = crate::atomic_dir::next_serial();
        let dir = std::env::temp_dir().join(format!("{prefix}-{}-{serial}", std::process::id()));
        match std::fs::create_dir(&dir) {
            Ok(()) => break dir,
            Err(e) if e.kind() == ErrorKind::AlreadyExists => continue,
            Err(e) => panic!("the temp dir is not writable: {e}"),
        }
    };
    if let Some((uid, gid)) = user {
        std::os::unix::fs::chown(&dir, Some(uid), Some(gid)).expect("root can chown its temp dir");
    }
    dir
}
