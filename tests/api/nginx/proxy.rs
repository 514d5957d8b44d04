//! The pieces of the nginx test that are about nginx: a certificate authority and a server
//! certificate for `localhost`, contrib/nginx/sigil.conf with its placeholders filled in, and
//! Debian's nginx running it in the foreground from a temporary prefix, stopped when dropped.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use openssl::asn1::Asn1Time;
use openssl::bn::BigNum;
use openssl::ec::{EcGroup, EcKey};
use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::pkey::{PKey, Private};
use openssl::x509::extension::{
    BasicConstraints, ExtendedKeyUsage, KeyUsage, SubjectAlternativeName,
};
use openssl::x509::{X509Name, X509NameBuilder, X509};

/// The example configuration the test runs, as shipped.
pub fn site_template() -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("contrib/nginx/sigil.conf");
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// `template` with every `{{NAME}}` replaced. Every value must be used, and no placeholder may
/// be left: a placeholder added to the file without a value here fails the test.
pub fn render(template: &str, values: &[(&str, String)]) -> String {
    let mut out = template.to_string();
    for (name, value) in values {
        let placeholder = format!("{{{{{name}}}}}");
        assert!(
            out.contains(&placeholder),
            "{placeholder} is not in the template"
        );
        out = out.replace(&placeholder, value);
    }
    if let Some(at) = out.find("{{") {
        panic!(
            "placeholder without a value: {}",
            &out[at..out.len().min(at + 40)]
        );
    }
    out
}

/// A test certificate authority and the server certificate it issued for `localhost` and
/// 127.0.0.1, written as PEM files nginx reads.
pub struct Tls {
    /// The authority's certificate, for clients to trust.
    pub ca_pem: Vec<u8>,
    pub cert: PathBuf,
    pub key: PathBuf,
}

fn p256() -> PKey<Private> {
    let group = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1).unwrap();
    PKey::from_ec_key(EcKey::generate(&group).unwrap()).unwrap()
}

fn name(cn: &str) -> X509Name {
    let mut name = X509NameBuilder::new().unwrap();
    name.append_entry_by_text("CN", cn).unwrap();
    name.build()
}

fn builder(
    serial: u32,
    subject: &X509Name,
    issuer: &X509Name,
    key: &PKey<Private>,
) -> openssl::x509::X509Builder {
    let mut b = X509::builder().unwrap();
    b.set_version(2).unwrap();
    b.set_serial_number(&BigNum::from_u32(serial).unwrap().to_asn1_integer().unwrap())
        .unwrap();
    b.set_subject_name(subject).unwrap();
    b.set_issuer_name(issuer).unwrap();
    b.set_pubkey(key).unwrap();
    b.set_not_before(&Asn1Time::days_from_now(0).unwrap())
        .unwrap();
    b.set_not_after(&Asn1Time::days_from_now(1).unwrap())
        .unwrap();
    b
}

pub fn certificate(dir: &Path) -> Tls {
    let (ca_key, ca_name) = (p256(), name("Sigil test CA"));
    let mut ca = builder(1, &ca_name, &ca_name, &ca_key);
    ca.append_extension(BasicConstraints::new().critical().ca().build().unwrap())
        .unwrap();
    ca.append_extension(
        KeyUsage::new()
            .critical()
            .key_cert_sign()
            .crl_sign()
            .build()
            .unwrap(),
    )
    .unwrap();
    ca.sign(&ca_key, MessageDigest::sha256()).unwrap();
    let ca = ca.build();

    let key = p256();
    let mut leaf = builder(2, &name("localhost"), &ca_name, &key);
    let san = SubjectAlternativeName::new()
        .dns("localhost")
        .ip("127.0.0.1")
        .build(&leaf.x509v3_context(Some(&ca), None))
        .unwrap();
    leaf.append_extension(san).unwrap();
    leaf.append_extension(BasicConstraints::new().build().unwrap())
        .unwrap();
    leaf.append_extension(KeyUsage::new().digital_signature().build().unwrap())
        .unwrap();
    leaf.append_extension(ExtendedKeyUsage::new().server_auth().build().unwrap())
        .unwrap();
    leaf.sign(&ca_key, MessageDigest::sha256()).unwrap();

    let (cert, key_path) = (dir.join("server.crt"), dir.join("server.key"));
    std::fs::write(&cert, leaf.build().to_pem().unwrap()).unwrap();
    std::fs::write(&key_path, key.private_key_to_pem_pkcs8().unwrap()).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&key_path, std::fs::Permissions::from_mode(0o600)).unwrap();
    Tls {
        ca_pem: ca.to_pem().unwrap(),
        cert,
        key: key_path,
    }
}

/// One line of the test's access log: what nginx saw and which node answered.
#[derive(Debug, Clone)]
pub struct Access {
    pub client: String,
    pub method: String,
    pub path: String,
    pub status: u16,
    /// Every node tried, in order (`127.0.0.1:A, 127.0.0.1:B` when A failed first).
    pub upstreams: Vec<String>,
}

impl Access {
    /// The node that gave the answer.
    pub fn node(&self) -> &str {
        self.upstreams.last().map(String::as_str).unwrap_or("")
    }
}

/// nginx in the foreground (`daemon off`), its prefix, logs and temporary files in `dir`.
pub struct Nginx {
    child: Option<Child>,
    dir: PathBuf,
}

fn nginx_binary() -> &'static str {
    let debian = "/usr/sbin/nginx";
    assert!(
        Path::new(debian).exists(),
        "{debian} is missing: install Debian's nginx (scripts/install-deps.sh)"
    );
    debian
}

impl Nginx {
    /// Writes `site` beside a main configuration that stands in for Debian's
    /// /etc/nginx/nginx.conf (which includes conf.d/*.conf inside `http`), checks it with
    /// `nginx -t`, and starts nginx.
    pub fn start(dir: &Path, site: &str) -> Self {
        let site_path = dir.join("sigil.conf");
        std::fs::write(&site_path, site).unwrap();
        let d = dir.display();
        let main = format!(
            "worker_processes 1;\n\
             pid {d}/nginx.pid;\n\
             error_log {d}/error.log info;\n\
             events {{ worker_connections 512; }}\n\
             http {{\n\
             \x20   log_format upstreams '$remote_addr|$request_method|$uri|$status|$upstream_addr';\n\
             \x20   access_log {d}/access.log upstreams;\n\
             \x20   client_body_temp_path {d}/client_body;\n\
             \x20   proxy_temp_path {d}/proxy;\n\
             \x20   fastcgi_temp_path {d}/fastcgi;\n\
             \x20   uwsgi_temp_path {d}/uwsgi;\n\
             \x20   scgi_temp_path {d}/scgi;\n\
             \x20   include {site};\n\
             }}\n",
            site = site_path.display()
        );
        let main_path = dir.join("nginx.conf");
        std::fs::write(&main_path, main).unwrap();
        let args = |cmd: &mut Command| {
            cmd.arg("-p")
                .arg(dir)
                .arg("-e")
                .arg(dir.join("error.log"))
                .arg("-c")
                .arg(&main_path);
        };
        let mut check = Command::new(nginx_binary());
        args(&mut check);
        let out = check.arg("-t").output().expect("run nginx -t");
        assert!(
            out.status.success(),
            "nginx -t refused the configuration:\n{}\n{site}",
            String::from_utf8_lossy(&out.stderr)
        );
        let mut cmd = Command::new(nginx_binary());
        args(&mut cmd);
        let child = cmd
            .args(["-g", "daemon off;"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("stderr.log")).unwrap())
            .spawn()
            .expect("start nginx");
        Self {
            child: Some(child),
            dir: dir.to_path_buf(),
        }
    }

    /// Waits until `url` answers 200 through nginx.
    pub async fn wait_ready(&mut self, http: &reqwest::Client, url: &str) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = self.child.as_mut().and_then(|c| c.try_wait().unwrap()) {
                panic!("nginx exited ({status}):\n{}", self.error_log());
            }
            match http.get(url).send().await {
                Ok(r) if r.status() == 200 => return,
                other => assert!(
                    Instant::now() < deadline,
                    "{url} through nginx: {other:?}\n{}",
                    self.error_log()
                ),
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub fn error_log(&self) -> String {
        std::fs::read_to_string(self.dir.join("error.log")).unwrap_or_default()
    }

    /// The access log's lines from line `from` on, once `done` holds for them: nginx writes a
    /// line when it has finished with a request, which can be just after the client has the
    /// answer.
    pub async fn logged(&self, from: usize, done: impl Fn(&[Access]) -> bool) -> Vec<Access> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let mut log = self.access_log();
            let since = log.split_off(from.min(log.len()));
            if done(&since) {
                return since;
            }
            assert!(Instant::now() < deadline, "not in nginx's log: {since:?}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub fn access_log(&self) -> Vec<Access> {
        std::fs::read_to_string(self.dir.join("access.log"))
            .unwrap_or_default()
            .lines()
            .map(|line| {
                let f: Vec<&str> = line.splitn(5, '|').collect();
                assert_eq!(f.len(), 5, "access log line: {line}");
                Access {
                    client: f[0].into(),
                    method: f[1].into(),
                    path: f[2].into(),
                    status: f[3].parse().unwrap_or(0),
                    upstreams: f[4]
                        .split([',', ' '])
                        .filter(|a| !["", "-", ":"].contains(a))
                        .map(String::from)
                        .collect(),
                }
            })
            .collect()
    }
}

impl Drop for Nginx {
    /// SIGTERM (nginx's fast shutdown: the master stops its workers), SIGKILL if it lingers.
    fn drop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        // SAFETY: a plain kill(2) of our own child, which has not been reaped yet.
        unsafe {
            libc::kill(child.id() as libc::pid_t, libc::SIGTERM);
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
    }
}
