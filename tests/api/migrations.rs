//! The SQLite and PostgreSQL migration trees must stay in step: the same migration names, each
//! with an up.sql and a down.sql, and the same tables.

use std::collections::BTreeSet;
use std::path::Path;

fn names(dir: &Path) -> BTreeSet<String> {
    std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect()
}

fn tables(sql: &str) -> BTreeSet<String> {
    sql.lines()
        .filter_map(|l| l.trim().strip_prefix("CREATE TABLE "))
        .map(|rest| rest.split_whitespace().next().unwrap().to_string())
        .collect()
}

#[test]
fn migration_trees_have_the_same_migrations_and_tables() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations");
    let sqlite = names(&root.join("sqlite"));
    let postgres = names(&root.join("postgres"));
    assert!(!sqlite.is_empty());
    assert_eq!(
        sqlite, postgres,
        "migrations/sqlite and migrations/postgres differ"
    );
    for name in &sqlite {
        for file in ["up.sql", "down.sql"] {
            for backend in ["sqlite", "postgres"] {
                assert!(
                    root.join(backend).join(name).join(file).is_file(),
                    "{backend}/{name}/{file} missing"
                );
            }
        }
        let read =
            |b: &str| std::fs::read_to_string(root.join(b).join(name).join("up.sql")).unwrap();
        assert_eq!(
            tables(&read("sqlite")),
            tables(&read("postgres")),
            "{name}: tables differ"
        );
    }
}
