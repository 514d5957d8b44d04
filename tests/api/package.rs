//! Issue 14 item 4: the Debian package, built and installed on this machine. cargo-deb packs
//! the very binary these tests run (no second build), `dpkg -i` installs it, and the installed
//! files are checked: the conffile (an edit survives a reinstall), the systemd unit
//! (`systemd-analyze verify`, and `security` exposure at most 2.0), `/usr/bin/sigil --version`,
//! `sigil migrate` with the installed configuration on SQLite and PostgreSQL, and the unit's own
//! `ExecStart` line serving `/readyz`; then `dpkg --purge` removes every file. It needs root and dpkg and fails, never
//! skips, without them. It is the one test that touches /usr/bin/sigil; a lock file keeps two
//! test processes on this machine from installing at once.

use std::fs::File;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use serde_json::Value;

use crate::helpers::{sigil_binary, PgDatabase};
use crate::pg_cluster::free_port;

const UNIT: &str = "/usr/lib/systemd/system/sigil.service";
const CONFIG: &str = "/etc/sigil/sigil.toml";
const CONFFILES: &str = "/var/lib/dpkg/info/sigil.conffiles";
const MAX_EXPOSURE: f64 = 2.0;

fn source(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

fn run(program: &str, args: &[&str]) -> Output {
    Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {program}: {e}"))
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn must(program: &str, args: &[&str]) -> String {
    let out = run(program, args);
    assert!(
        out.status.success(),
        "{program} {args:?} failed:\n{}",
        text(&out)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Root, dpkg, systemd-analyze and cargo-deb, or a loud failure: a skipped package test would
/// count as a passing one.
fn require_tools(cargo: &str) {
    // SAFETY: geteuid has no preconditions and cannot fail.
    let uid = unsafe { libc::geteuid() };
    assert_eq!(
        uid, 0,
        "the package test installs a .deb with dpkg and must run as root (CI does)"
    );
    for tool in ["dpkg", "dpkg-query", "systemd-analyze"] {
        let found = Command::new(tool).arg("--version").output();
        assert!(
            found.is_ok_and(|o| o.status.success()),
            "{tool} is missing: the package test needs Debian's dpkg and systemd \
             (scripts/install-deps.sh installs them)"
        );
    }
    let deb = Command::new(cargo).args(["deb", "--version"]).output();
    assert!(
        deb.is_ok_and(|o| o.status.success()),
        "cargo-deb is missing: scripts/install-deps.sh installs it"
    );
}

fn installed_status() -> Option<String> {
    let out = run("dpkg-query", &["-W", "-f=${Status}", "sigil"]);
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
        .filter(|s| !s.ends_with("not-installed"))
}

/// Purges the package when the test ends, passing or not, once it has been installed.
struct Installed {
    purged: bool,
}

impl Installed {
    fn purge(&mut self) -> String {
        self.purged = true;
        must("dpkg", &["--purge", "sigil"])
    }
}

impl Drop for Installed {
    fn drop(&mut self) {
        if !self.purged {
            let _ = run("dpkg", &["--purge", "sigil"]);
        }
    }
}

/// `cargo deb --no-build` on the binary this test binary was built with: its target
/// directory is the one holding `debug/sigil`, the dev profile's output.
fn build_package(cargo: &str, out_dir: &Path) -> PathBuf {
    let binary = sigil_binary();
    let target_dir = binary
        .parent()
        .and_then(Path::parent)
        .expect("the sigil binary sits in <target>/debug/");
    assert_eq!(
        binary.parent().and_then(Path::file_name),
        Some("debug".as_ref()),
        "the tests' binary is built with the dev profile"
    );
    // gzip -1 rather than xz: a third of the CPU time for the unoptimised binary; what is
    // tested is what the package holds, not how tightly.
    let out = Command::new(cargo)
        .args(["deb", "--no-build", "--profile", "dev", "--output"])
        .arg(out_dir)
        .arg("--manifest-path")
        .arg(source("Cargo.toml"))
        .args(["--fast", "--compress-type", "gzip", "--compress-system"])
        .env("CARGO_TARGET_DIR", target_dir)
        .stdin(Stdio::null())
        .output()
        .expect("run cargo deb");
    assert!(out.status.success(), "cargo deb failed:\n{}", text(&out));
    let name = format!("sigil_{}_amd64.deb", env!("CARGO_PKG_VERSION"));
    let deb = out_dir.join(&name);
    assert!(deb.is_file(), "cargo deb made no {name}:\n{}", text(&out));
    deb
}

/// The exposure systemd-analyze gives the unit, 0.0 (locked down) to 10.0.
fn exposure(unit: &str) -> f64 {
    let report = must("systemd-analyze", &["security", "--offline=true", unit]);
    let line = report
        .lines()
        .find(|l| l.contains("Overall exposure level for sigil.service:"))
        .unwrap_or_else(|| panic!("no overall exposure in:\n{report}"));
    let value = line.rsplit(':').next().unwrap_or_default();
    value
        .split_whitespace()
        .next()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("cannot read the exposure from {line:?}"))
}

/// The installed binary with the installed configuration, outside systemd's sandbox (this
/// machine's PID 1 is not systemd), its database moved by `SIGIL_DATABASE_URL`.
fn installed_sigil(args: &[&str], env: &[(&str, &str)]) -> Command {
    let mut cmd = Command::new(args[0]);
    cmd.args(&args[1..])
        .env_remove("SIGIL_CONFIG")
        .env_remove("RUST_LOG")
        .stdin(Stdio::null());
    for (name, value) in env {
        cmd.env(name, value);
    }
    cmd
}

fn migrate(env: &[(&str, &str)]) -> String {
    let out = installed_sigil(&["/usr/bin/sigil", "--config", CONFIG, "migrate"], env)
        .output()
        .expect("run /usr/bin/sigil migrate");
    assert!(
        out.status.success(),
        "sigil migrate failed:\n{}",
        text(&out)
    );
    text(&out)
}

struct Serving(Child);

impl Drop for Serving {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The unit's `ExecStart=` line, run as it is written, answers `/readyz` and names the
/// configured issuer in its discovery document.
async fn serve_as_the_unit_does(unit: &str, dir: &Path) {
    let exec = unit
        .lines()
        .find_map(|l| l.strip_prefix("ExecStart="))
        .expect("the unit has an ExecStart line");
    let args: Vec<&str> = exec.split_whitespace().collect();
    assert_eq!(args[..2], ["/usr/bin/sigil", "--config"], "{exec}");
    let port = free_port();
    let bind = format!("127.0.0.1:{port}");
    let db = format!("sqlite://{}", dir.join("serve/sigil.db").display());
    let log = File::create(dir.join("serve.log")).expect("log file");
    let child = installed_sigil(&args, &[("SIGIL_DATABASE_URL", &db), ("SIGIL_BIND", &bind)])
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("start the unit's ExecStart");
    let _serving = Serving(child);
    let http = reqwest::Client::new();
    let base = format!("http://{bind}");
    let mut ready = false;
    for _ in 0..300 {
        if let Ok(r) = http.get(format!("{base}/readyz")).send().await {
            if r.status() == 200 {
                ready = true;
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let log = std::fs::read_to_string(dir.join("serve.log")).unwrap_or_default();
    assert!(ready, "the installed sigil did not become ready:\n{log}");
    let discovery: Value = http
        .get(format!("{base}/.well-known/openid-configuration"))
        .send()
        .await
        .expect("discovery")
        .json()
        .await
        .expect("discovery JSON");
    assert_eq!(discovery["issuer"], "https://id.example.com", "{discovery}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deb_installs_serves_and_purges() {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    require_tools(&cargo);
    let lock = File::create(std::env::temp_dir().join("sigil-package-test.lock"))
        .expect("create the lock file");
    lock.lock().expect("lock the package test");
    if let Some(status) = installed_status() {
        panic!(
            "a sigil package is already installed here ({status}); the test would replace it: \
             `dpkg --purge sigil` first"
        );
    }
    assert!(
        !Path::new("/usr/bin/sigil").exists(),
        "/usr/bin/sigil exists outside any package; the test would overwrite it"
    );

    let dir = tempfile::tempdir().expect("temp dir");
    let deb = build_package(&cargo, &dir.path().join("out"));
    let size = std::fs::metadata(&deb).expect("the .deb").len();
    eprintln!("{}: {size} bytes", deb.display());

    let mut installed = Installed { purged: false };
    must("dpkg", &["-i", deb.to_str().expect("UTF-8 path")]);
    assert!(installed_status().is_some_and(|s| s == "install ok installed"));

    // The files, where the README says they are.
    let listed = must("dpkg", &["-L", "sigil"]);
    let mut expected: Vec<String> = [
        "/usr/bin/sigil",
        CONFIG,
        UNIT,
        "/usr/share/doc/sigil/copyright",
    ]
    .map(String::from)
    .to_vec();
    for doc in std::fs::read_dir(env!("CARGO_MANIFEST_DIR")).expect("source tree") {
        let name = doc
            .expect("entry")
            .file_name()
            .into_string()
            .expect("UTF-8");
        if name.ends_with(".md") {
            expected.push(format!("/usr/share/doc/sigil/{name}"));
        }
    }
    assert!(expected.iter().any(|f| f.ends_with("/README.md")));
    for file in &expected {
        assert!(
            listed.lines().any(|l| l == file),
            "{file} not in:\n{listed}"
        );
        assert!(Path::new(file).is_file(), "{file} is not installed");
    }
    let mode = std::fs::metadata("/usr/bin/sigil")
        .expect("binary")
        .permissions()
        .mode();
    assert_eq!(mode & 0o7777, 0o755);
    let conffiles = std::fs::read_to_string(CONFFILES).expect("sigil.conffiles");
    assert_eq!(conffiles.lines().collect::<Vec<_>>(), [CONFIG]);
    let config = std::fs::read_to_string(CONFIG).expect("installed configuration");
    assert_eq!(
        config,
        std::fs::read_to_string(source("contrib/deb/sigil.toml")).unwrap()
    );
    let unit = std::fs::read_to_string(UNIT).expect("installed unit");
    assert_eq!(
        unit,
        std::fs::read_to_string(source("contrib/systemd/sigil.service")).unwrap()
    );
    // A conffile: installing the package again keeps the operator's edit.
    let edited = format!("{config}# edited by the operator\n");
    std::fs::write(CONFIG, &edited).expect("edit the configuration");
    must("dpkg", &["-i", deb.to_str().expect("UTF-8 path")]);
    assert_eq!(std::fs::read_to_string(CONFIG).unwrap(), edited);
    // The configured SQLite file lies in the unit's state directory.
    assert!(unit.lines().any(|l| l == "StateDirectory=sigil"), "{unit}");
    assert!(config
        .lines()
        .any(|l| l == r#"database_url = "sqlite:///var/lib/sigil/sigil.db""#));

    // The unit.
    let verify = run("systemd-analyze", &["verify", UNIT]);
    assert!(
        verify.status.success(),
        "systemd-analyze verify:\n{}",
        text(&verify)
    );
    assert!(
        !text(&verify).contains("sigil"),
        "systemd-analyze verify:\n{}",
        text(&verify)
    );
    let score = exposure(UNIT);
    eprintln!("systemd-analyze security --offline=true {UNIT}: exposure {score}");
    assert!(score <= MAX_EXPOSURE, "exposure {score} > {MAX_EXPOSURE}");

    // The installed binary is the tests' binary.
    let version = must("/usr/bin/sigil", &["--version"]);
    assert!(
        version.starts_with(&format!("sigil {}", env!("CARGO_PKG_VERSION"))),
        "{version}"
    );
    assert_eq!(
        version,
        must(sigil_binary().to_str().unwrap(), &["--version"])
    );

    // `sigil migrate` with the installed configuration: on SQLite the master key appears
    // beside the database, mode 0600; PostgreSQL takes the key from the environment.
    let state = dir.path().join("state");
    let sqlite = format!("sqlite://{}", state.join("sigil.db").display());
    let log = migrate(&[("SIGIL_DATABASE_URL", &sqlite)]);
    assert!(state.join("sigil.db").is_file(), "{log}");
    let key = std::fs::metadata(state.join("sigil.master.key")).expect("master key created");
    assert_eq!(key.permissions().mode() & 0o777, 0o600);
    assert!(log.contains("created a new master key"), "{log}");
    let pg = PgDatabase::create();
    let master = sigil::crypto::master_key::MasterKey::generate().to_base64();
    migrate(&[
        ("SIGIL_DATABASE_URL", &pg.url),
        ("SIGIL_MASTER_KEY", &master),
    ]);

    serve_as_the_unit_does(&unit, dir.path()).await;

    // Purged: every file gone, the package unknown to dpkg.
    installed.purge();
    assert_eq!(installed_status(), None);
    for file in &expected {
        assert!(!Path::new(file).exists(), "{file} survived the purge");
    }
    assert!(!Path::new(CONFFILES).exists());
    assert!(
        !Path::new("/etc/sigil").exists(),
        "/etc/sigil survived the purge"
    );
}
