//! `calldesk admin` as an administrator runs it, against a real PostgreSQL: each test creates
//! its own database on `DATABASE_URL`'s server (default `postgres://postgres@127.0.0.1:5432/
//! postgres`), runs the built binary against it and checks the result through the store.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use calldesk_calls::TenantId;
use calldesk_central::password::verify_password;
use std::process::Command;

use support::{Run, TestDb, block_on};

fn tenant(id: &str) -> TenantId {
    TenantId::new(id).unwrap()
}

#[test]
fn tenants_are_added_listed_without_secrets_and_their_client_id_works() {
    let db = TestDb::new();
    let salt = ("MANGO_SALT_ACME", "the-real-mango-salt");
    let mango = db
        .admin_env(
            &[
                "tenant",
                "add",
                "--name",
                "Acme Ltd",
                "--number",
                "0367",
                "--mango-key",
                "acme-api-key",
                "--mango-salt-env",
                "MANGO_SALT_ACME",
            ],
            "",
            &[salt],
        )
        .ok()
        .client_id();
    let ami = db
        .admin(
            &[
                "tenant",
                "add",
                "--name",
                "Ромашка",
                "--id",
                "romashka",
                "--number",
                "0368",
                "--region",
                "DE",
                "--ami-host",
                "pbx.romashka.test",
                "--ami-user",
                "calldesk",
                "--ami-secret-env",
                "AMI_SECRET_ROMASHKA",
                "--ami-tls",
            ],
            "",
        )
        .ok()
        .client_id();
    assert_ne!(mango, ami);

    let store = db.store();
    let found = block_on(store.tenant_by_client_secret(&mango))
        .unwrap()
        .unwrap();
    assert_eq!(found.id, tenant("acme-ltd"));
    assert_eq!(found.number, "0367");
    let found = block_on(store.tenant_by_client_secret(&ami))
        .unwrap()
        .unwrap();
    assert_eq!(found.id, tenant("romashka"));
    assert_eq!(found.region, "DE");
    assert!(matches!(
        found.pbx,
        calldesk_central::PbxConfig::Asterisk {
            port: 5039,
            tls: true,
            ..
        }
    ));

    let list = db.admin_env(&["tenant", "list"], "", &[salt]);
    list.ok();
    let lines: Vec<&str> = list.stdout.lines().collect();
    assert_eq!(lines.len(), 3, "{list:#?}");
    assert!(lines[0].starts_with("ID"));
    assert!(lines[1].starts_with("acme-ltd  Acme Ltd"), "{list:#?}");
    assert!(lines[1].contains("mango") && lines[1].contains("key acme-api-key"));
    assert!(lines[1].contains("salt in $MANGO_SALT_ACME"));
    assert!(
        lines[2].contains("calldesk@pbx.romashka.test:5039 tls, secret in $AMI_SECRET_ROMASHKA")
    );
    assert!(lines[2].ends_with("yes"));
    for secret in [salt.1, &mango, &ami] {
        assert!(!list.stdout.contains(secret) && !list.stderr.contains(secret));
    }
    // Nothing of the salt or the clientId in the database either.
    let dump: String = block_on(async {
        sqlx::query_scalar("SELECT string_agg(t::text, ' ') FROM tenants t")
            .fetch_one(store.pool())
            .await
            .unwrap()
    });
    assert!(!dump.contains(salt.1) && !dump.contains(&mango), "{dump}");

    // Rotating: the new clientId works, the old one no longer does.
    let rotated = db
        .admin(&["tenant", "rotate-client-id", "--tenant", "acme-ltd"], "")
        .ok()
        .client_id();
    assert!(
        block_on(store.tenant_by_client_secret(&mango))
            .unwrap()
            .is_none()
    );
    assert!(
        block_on(store.tenant_by_client_secret(&rotated))
            .unwrap()
            .is_some()
    );
    db.admin(&["tenant", "rotate-client-id", "--tenant", "nobody"], "")
        .fails_with(2, "no tenant nobody");

    // The disposition list: the built-in one, replaced, refused when bad.
    let list = |extra: &[&str]| {
        let mut args = vec!["tenant", "dispositions", "--tenant", "acme-ltd"];
        args.extend_from_slice(extra);
        db.admin(&args, "")
    };
    assert_eq!(
        list(&[]).ok().stdout.trim(),
        calldesk_wire::DEFAULT_DISPOSITIONS.join(",")
    );
    assert_eq!(
        list(&["--set", "sold,lost"]).ok().stdout.trim(),
        "sold,lost"
    );
    assert_eq!(list(&[]).ok().stdout.trim(), "sold,lost");
    list(&["--set", "sold,Sold"]).fails_with(2, "disposition code `Sold`");
    assert_eq!(list(&[]).ok().stdout.trim(), "sold,lost");
}

#[test]
fn bad_tenants_are_refused_with_what_to_fix() {
    let db = TestDb::new();
    let add = |extra: &[&str]| {
        let mut args = vec!["tenant", "add"];
        args.extend_from_slice(extra);
        db.admin(&args, "")
    };
    add(&["--name", "Acme", "--number", "0367", "--demo"]).ok();
    add(&["--name", "Other", "--number", "0367", "--demo"])
        .fails_with(2, "a tenant with number 0367 already exists");
    add(&["--name", "Acme", "--number", "0999", "--demo"])
        .fails_with(2, "a tenant with id acme already exists");
    add(&["--name", "Ромашка", "--number", "0400", "--demo"]).fails_with(2, "pass --id");
    add(&["--name", "X", "--number", "04x", "--demo"]).fails_with(2, "tenant number `04x`");
    add(&[
        "--name", "X", "--number", "0401", "--region", "XX", "--demo",
    ])
    .fails_with(2, "--region");
    // Exactly one PBX kind, and each kind's settings together.
    add(&["--name", "X", "--number", "0402"]).fails_with(2, "--mango-key");
    add(&[
        "--name",
        "X",
        "--number",
        "0402",
        "--demo",
        "--mango-key",
        "k",
        "--mango-salt-env",
        "S",
    ])
    .fails_with(2, "cannot be used with");
    add(&["--name", "X", "--number", "0402", "--mango-key", "k"]).fails_with(2, "--mango-salt-env");
    add(&[
        "--name",
        "X",
        "--number",
        "0402",
        "--ami-host",
        "h",
        "--ami-user",
        "u",
    ])
    .fails_with(2, "--ami-secret-env");
    // A secret pasted where the variable's name goes is refused and not echoed.
    let r = add(&[
        "--name",
        "X",
        "--number",
        "0402",
        "--mango-key",
        "k",
        "--mango-salt-env",
        "s3cr3t salt!",
    ]);
    r.fails_with(2, "NAME of the environment variable");
    assert!(!r.stderr.contains("s3cr3t"), "{r:#?}");
    let tenants = block_on(db.store().tenants()).unwrap();
    assert_eq!(tenants.len(), 1);
}

#[test]
fn operators_get_their_password_from_stdin() {
    let db = TestDb::new();
    db.admin(
        &[
            "tenant", "add", "--name", "Acme", "--number", "0367", "--demo",
        ],
        "",
    )
    .ok();
    let add = |login: &str, ext: &str, role: &str, password: &str| {
        db.admin(
            &[
                "operator",
                "add",
                "--tenant",
                "acme",
                "--login",
                login,
                "--extension",
                ext,
                "--role",
                role,
                "--name",
                "Anna K",
            ],
            password,
        )
    };
    let out = add("anna", "101", "supervisor", "correct horse\n");
    out.ok();
    assert!(
        out.stdout.contains("operator anna added to tenant acme"),
        "{out:#?}"
    );
    assert!(!out.stdout.contains("correct horse") && !out.stderr.contains("correct horse"));

    let store = db.store();
    let (op, hash) = block_on(store.operator_for_login(&tenant("acme"), "anna"))
        .unwrap()
        .unwrap();
    assert_eq!(op.extension.as_str(), "101");
    assert_eq!(op.role, calldesk_central::Role::Supervisor);
    assert_eq!(op.name.as_deref(), Some("Anna K"));
    // Only the newline was trimmed: the space inside stays part of the password.
    assert!(verify_password("correct horse", &hash));
    assert!(!verify_password("correct horse\n", &hash));
    assert!(!verify_password("correcthorse", &hash));

    add("boris", "101", "operator", "another password\r\n")
        .fails_with(2, "extension 101 is already taken in tenant acme");
    add("anna", "102", "operator", "another password\n")
        .fails_with(2, "operator login `anna` already exists in tenant acme");
    add("boris", "102", "operator", "short\n").fails_with(2, "at least 8");
    add("boris", "102", "operator", "").fails_with(2, "no password on stdin");
    add("boris", "102", "chief", "long enough\n").fails_with(2, "invalid value 'chief'");
    db.admin(
        &[
            "operator",
            "add",
            "--tenant",
            "nobody",
            "--login",
            "x",
            "--extension",
            "1",
            "--role",
            "operator",
        ],
        "long enough\n",
    )
    .fails_with(2, "no tenant nobody");
    add("boris", "102", "operator", "long enough\r\n").ok();
    let (_, hash) = block_on(store.operator_for_login(&tenant("acme"), "boris"))
        .unwrap()
        .unwrap();
    assert!(verify_password("long enough", &hash));

    let list = db.admin(&["operator", "list", "--tenant", "acme"], "");
    list.ok();
    let lines: Vec<&str> = list.stdout.lines().collect();
    assert_eq!(lines.len(), 3, "{list:#?}");
    assert!(lines[0].starts_with("LOGIN"));
    assert!(
        lines[1].starts_with("anna   Anna K  supervisor  101"),
        "{list:#?}"
    );
    assert!(
        lines[2].starts_with("boris  Anna K  operator    102"),
        "{list:#?}"
    );
    assert!(!list.stdout.contains("argon2"));
}

#[test]
fn contacts_are_imported_all_or_nothing() {
    let db = TestDb::new();
    db.admin(
        &[
            "tenant", "add", "--name", "Acme", "--number", "0367", "--demo",
        ],
        "",
    )
    .ok();
    let dir = std::env::temp_dir();
    let good = dir.join(format!("{}-good.csv", db.name));
    let bad = dir.join(format!("{}-bad.csv", db.name));
    std::fs::write(
        &good,
        "name,company,phones\n\
         Ivan Petrov,Romashka,\"+7 495 123-45-67; 8 916 123 45 67\"\n\
         Anna Sidorova,romashka,84951112233\n\
         Oleg,,+4930123456\n",
    )
    .unwrap();
    std::fs::write(
        &bad,
        "name,company,phones\n\
         Petr,Acme,+74959990001\n\
         Maria,Acme,8 495 ABC\n\
         Nina,Acme,+74959990003\n",
    )
    .unwrap();

    let out = db.admin(
        &[
            "contacts",
            "import",
            "--tenant",
            "acme",
            bad.to_str().unwrap(),
        ],
        "",
    );
    out.fails_with(2, "line 3: phone");
    assert!(out.stderr.contains("nothing was imported"), "{out:#?}");
    assert!(
        !out.stderr.contains("line 2") && !out.stderr.contains("line 4"),
        "{out:#?}"
    );
    let store = db.store();
    let t = tenant("acme");
    assert!(block_on(store.contacts(&t, None, 100)).unwrap().is_empty());
    assert!(
        block_on(store.identify(&t, "+74959990001"))
            .unwrap()
            .is_none()
    );

    let out = db.admin(
        &[
            "contacts",
            "import",
            "--tenant",
            "acme",
            good.to_str().unwrap(),
        ],
        "",
    );
    out.ok();
    assert_eq!(
        out.stdout, "contacts=3\ncompanies_created=1\nphones=4\n",
        "{out:#?}"
    );
    let card = block_on(store.identify(&t, "+79161234567"))
        .unwrap()
        .unwrap();
    assert_eq!(card.contact.unwrap().name, "Ivan Petrov");
    assert_eq!(card.company.unwrap().name, "Romashka");
    let card = block_on(store.identify(&t, "+74951112233"))
        .unwrap()
        .unwrap();
    assert_eq!(card.contact.unwrap().name, "Anna Sidorova");

    db.admin(
        &[
            "contacts",
            "import",
            "--tenant",
            "nobody",
            good.to_str().unwrap(),
        ],
        "",
    )
    .fails_with(2, "no tenant nobody");
    db.admin(
        &[
            "contacts",
            "import",
            "--tenant",
            "acme",
            "/nonexistent/x.csv",
        ],
        "",
    )
    .fails_with(2, "cannot read /nonexistent/x.csv");
    let _ = std::fs::remove_file(good);
    let _ = std::fs::remove_file(bad);
}

#[test]
fn an_unreachable_database_exits_1_without_showing_the_password() {
    let run = |url: &str| {
        Run::from(
            Command::new(env!("CARGO_BIN_EXE_calldesk"))
                .args(["admin", "tenant", "list"])
                .env("DATABASE_URL", url)
                .output()
                .unwrap(),
        )
    };
    let out = run("postgres://calldesk:pa55word-xyz@127.0.0.1:1/calldesk");
    out.fails_with(1, "check DATABASE_URL");
    assert!(
        out.stderr
            .contains("postgres://calldesk:***@127.0.0.1:1/calldesk"),
        "{out:#?}"
    );
    assert!(!out.stderr.contains("pa55word"), "{out:#?}");
    let out = Run::from(
        Command::new(env!("CARGO_BIN_EXE_calldesk"))
            .args(["admin", "tenant", "list"])
            .env_remove("DATABASE_URL")
            .output()
            .unwrap(),
    );
    out.fails_with(2, "set DATABASE_URL");
    // --help never shows the URL from the environment.
    let help = Command::new(env!("CARGO_BIN_EXE_calldesk"))
        .args(["admin", "tenant", "list", "--help"])
        .env("DATABASE_URL", "postgres://u:pa55word-xyz@h/db")
        .output()
        .unwrap();
    let help = String::from_utf8(help.stdout).unwrap();
    assert!(
        help.contains("DATABASE_URL") && !help.contains("pa55word"),
        "{help}"
    );
    let help = Command::new(env!("CARGO_BIN_EXE_calldesk"))
        .args(["admin", "tenant", "add", "--help"])
        .output()
        .unwrap();
    let help = String::from_utf8(help.stdout).unwrap();
    assert!(help.contains("never stored"), "{help}");
}
