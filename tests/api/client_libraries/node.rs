//! One running client-library script and the conversation with it: it writes JSON lines named
//! by `step`, and reads the test's answer to the steps that ask.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};

use crate::flow::REDIRECT;

/// The longest a script may stay silent: a hung script fails the test rather than hanging it.
const SILENCE: Duration = Duration::from_secs(120);

pub struct Script {
    name: String,
    child: Child,
    stdin: ChildStdin,
    lines: Lines<BufReader<ChildStdout>>,
}

/// `tests/node`, where the scripts and their `node_modules` are.
fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/node")
}

impl Script {
    /// Starts `tests/node/<name>.mjs` (Node) or `tests/python/<name>.py` (Python) against the
    /// Sigil at `issuer`.
    pub fn start(name: &str, issuer: &str) -> Self {
        let mut command = if let Some(py) = name.strip_suffix(".py") {
            let mut c = Command::new("/usr/bin/python3");
            c.arg(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(format!("tests/python/{py}.py")));
            c
        } else {
            assert!(
                dir().join("node_modules/openid-client").is_dir(),
                "openid-client is not installed: run `bash scripts/install-deps.sh`"
            );
            let mut c = Command::new("node");
            c.arg(dir().join(format!("{name}.mjs")));
            c
        };
        let mut child = command
            .env("SIGIL_ISSUER", issuer)
            .env("SIGIL_REDIRECT_URI", REDIRECT)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
        let stdin = child.stdin.take().unwrap();
        let lines = BufReader::new(child.stdout.take().unwrap()).lines();
        Self {
            name: name.to_string(),
            child,
            stdin,
            lines,
        }
    }

    /// The next step the script sends; a script that failed fails the test with its error.
    pub async fn next(&mut self) -> Value {
        let line = tokio::time::timeout(SILENCE, self.lines.next_line())
            .await
            .unwrap_or_else(|_| panic!("{} said nothing for {SILENCE:?}", self.name))
            .unwrap();
        let Some(line) = line else {
            let stderr = self.stderr().await;
            panic!("{} ended without a result: {stderr}", self.name);
        };
        let step: Value = serde_json::from_str(&line)
            .unwrap_or_else(|_| panic!("{} wrote something that is not a step: {line}", self.name));
        if step["step"] == "error" {
            let stderr = self.stderr().await;
            panic!("{} failed: {step:#}\n{stderr}", self.name);
        }
        step
    }

    /// The next step, which must be `name`.
    pub async fn expect(&mut self, name: &str) -> Value {
        let step = self.next().await;
        assert_eq!(step["step"], name, "{}: {step}", self.name);
        step
    }

    /// Answers the step the script is waiting on.
    pub async fn reply(&mut self, answer: Value) {
        let mut line = answer.to_string();
        line.push('\n');
        self.stdin.write_all(line.as_bytes()).await.unwrap();
        self.stdin.flush().await.unwrap();
    }

    /// The script's `done` result, after which it must exit with success.
    pub async fn finish(mut self) -> Value {
        let done = self.expect("done").await;
        let status = self.child.wait().await.unwrap();
        assert!(status.success(), "{} exited with {status}", self.name);
        done
    }

    async fn stderr(&mut self) -> String {
        let mut out = String::new();
        if let Some(mut e) = self.child.stderr.take() {
            let _ = tokio::time::timeout(Duration::from_secs(5), e.read_to_string(&mut out)).await;
        }
        out
    }
}
