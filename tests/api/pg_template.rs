//! A migrated PostgreSQL database that the apps' fresh databases are copied from.
//!
//! `CREATE DATABASE` from PostgreSQL's own `template1` and then Sigil's migrations cost the
//! server about 0.8 s of CPU per app; a copy of a database migrated once costs it 0.08 s. The
//! template is named after a digest of the PostgreSQL migrations' text, so an edited or a new
//! migration gets a template of its own, and it is kept on the server for the next run; it is
//! built under an advisory lock, as another test process may want it at the same moment.
//! Tests of migrations and of commands on an empty or outdated schema start from an empty
//! database ([`PgDatabase::create`](crate::helpers::PgDatabase::create)), never from this one.

use std::path::Path;
use std::sync::OnceLock;
use std::time::Duration;

use diesel::{Connection, PgConnection, RunQueryDsl};

use sigil::config::{Secret, Settings};
use sigil::crypto::master_key::MasterKey;

/// Any value: the lock only keeps two test processes from building the template together.
const BUILD_LOCK: i64 = 0x5161_6c74_6d70;

/// The template's name, built on first use.
pub fn template(admin_url: &str) -> &'static str {
    static NAME: OnceLock<String> = OnceLock::new();
    NAME.get_or_init(|| build(admin_url))
}

fn build(admin_url: &str) -> String {
    let name = format!("sigil_test_template_{}", migrations_digest());
    let mut conn = PgConnection::establish(admin_url).expect("connect to SIGIL_TEST_POSTGRES_URL");
    diesel::sql_query(format!("SELECT pg_advisory_lock({BUILD_LOCK})"))
        .execute(&mut conn)
        .expect("take the template lock");
    let exists: bool = diesel::select(diesel::dsl::sql::<diesel::sql_types::Bool>(&format!(
        "EXISTS (SELECT 1 FROM pg_database WHERE datname = '{name}')"
    )))
    .get_result(&mut conn)
    .expect("look for the template");
    if !exists {
        // Built under another name and renamed when complete: a run killed halfway leaves
        // no template that looks finished.
        let building = format!("{name}_building");
        for sql in [
            format!("DROP DATABASE IF EXISTS {building} WITH (FORCE)"),
            format!("CREATE DATABASE {building}"),
        ] {
            diesel::sql_query(sql).execute(&mut conn).expect(&building);
        }
        let mut url = url::Url::parse(admin_url).expect("SIGIL_TEST_POSTGRES_URL is a URL");
        url.set_path(&building);
        let settings = Settings {
            database_url: Secret::new(url.to_string()),
            master_key: Some(Secret::new(MasterKey::generate().to_base64())),
            ..Settings::default()
        };
        drop(sigil::bootstrap::Core::open_to_migrate(&settings).expect("migrate the template"));
        rename(&mut conn, &building, &name);
    }
    // The session's end releases the lock.
    name
}

/// `ALTER DATABASE … RENAME`, retried while the migrating connections' server processes are
/// still on their way out.
fn rename(conn: &mut PgConnection, from: &str, to: &str) {
    let sql = format!("ALTER DATABASE {from} RENAME TO {to}");
    let mut last = None;
    for _ in 0..100 {
        match diesel::sql_query(&sql).execute(conn) {
            Ok(_) => return,
            Err(e) => last = Some(e),
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("rename the template: {last:?}");
}

/// SHA-256 over the PostgreSQL migrations' paths and text, in order, as 16 hex digits.
fn migrations_digest() -> String {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations/postgres");
    let mut files = Vec::new();
    collect(&root, &mut files);
    files.sort();
    let mut all = Vec::new();
    for file in files {
        all.extend_from_slice(
            file.strip_prefix(&root)
                .unwrap()
                .to_string_lossy()
                .as_bytes(),
        );
        all.push(0);
        all.extend(std::fs::read(&file).expect("read a migration"));
        all.push(0);
    }
    let digest = openssl::sha::sha256(&all);
    digest[..8].iter().map(|b| format!("{b:02x}")).collect()
}

fn collect(dir: &Path, files: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read migrations/postgres") {
        let path = entry.expect("a directory entry").path();
        if path.is_dir() {
            collect(&path, files);
        } else {
            files.push(path);
        }
    }
}
