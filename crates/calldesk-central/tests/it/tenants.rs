//! Tenants (configuration, clientIds) and operators (logins, roles, uniqueness).

use calldesk_calls::Extension;
use calldesk_central::password::{client_secret_digest, hash_password, verify_password};
use calldesk_central::{
    CentralError, CentralStore, NewOperator, NewTenant, PbxConfig, PbxKind, Role, TenantConfig,
};
use sqlx::PgPool;

use crate::common::{demo_tenant, tid};

fn asterisk() -> PbxConfig {
    PbxConfig::Asterisk {
        host: " pbx.acme.example ".into(),
        port: 5039,
        user: "crm".into(),
        secret_env: "ACME_AMI_SECRET".into(),
        tls: true,
        dialplan: calldesk_central::AmiDialplan {
            tech: " SIP ".into(),
            context: "office".into(),
            international_prefix: Some("00".into()),
            hold_context: None,
            recordings_dir: None,
        },
    }
}

fn acme() -> NewTenant {
    NewTenant {
        id: tid("acme"),
        name: " Acme ".into(),
        number: "0367".into(),
        region: "ru".into(),
        pbx: asterisk(),
    }
}

#[sqlx::test(migrator = "calldesk_central::MIGRATOR")]
async fn tenants_keep_their_config_and_only_a_digest_of_the_client_secret(pool: PgPool) {
    let store = CentralStore::from_pool(pool.clone());
    let secret = store.add_tenant(&acme()).await.unwrap();
    assert_eq!(secret.len(), 64);
    let mango = PbxConfig::Mango {
        api_url: Some("https://app.mango-office.ru/vpbx".into()),
        key: "k3y".into(),
        salt_env: "GLOBEX_SALT".into(),
    };
    let globex_secret = store
        .add_tenant(&NewTenant {
            id: tid("globex"),
            name: "Globex".into(),
            number: "4950000000".into(),
            region: "DE".into(),
            pbx: mango.clone(),
        })
        .await
        .unwrap();
    demo_tenant(&store, "demo", "1").await;

    let all = store.tenants().await.unwrap();
    let ids: Vec<&str> = all.iter().map(|t| t.id.as_str()).collect();
    assert_eq!(ids, ["acme", "demo", "globex"], "ordered by id");
    let expected_acme = TenantConfig {
        id: tid("acme"),
        name: "Acme".into(),
        number: "0367".into(),
        region: "RU".into(),
        active: true,
        pbx: PbxConfig::Asterisk {
            host: "pbx.acme.example".into(),
            port: 5039,
            user: "crm".into(),
            secret_env: "ACME_AMI_SECRET".into(),
            tls: true,
            // Trimmed and lower-cased; read back as written.
            dialplan: calldesk_central::AmiDialplan {
                tech: "sip".into(),
                context: "office".into(),
                international_prefix: Some("00".into()),
                hold_context: None,
                recordings_dir: None,
            },
        },
    };
    assert_eq!(all[0], expected_acme);
    assert_eq!(all[1].pbx, PbxConfig::Demo);
    assert_eq!(all[2].pbx, mango);
    assert_eq!(all[2].region, "DE");
    assert_eq!(
        store.tenant(&tid("acme")).await.unwrap(),
        Some(expected_acme.clone())
    );
    assert_eq!(store.tenant(&tid("nobody")).await.unwrap(), None);

    // The clientId finds its tenant; nothing else does.
    let found = store.tenant_by_client_secret(&secret).await.unwrap();
    assert_eq!(found.map(|t| t.id), Some(tid("acme")));
    let found = store.tenant_by_client_secret(&globex_secret).await.unwrap();
    assert_eq!(found.map(|t| t.id), Some(tid("globex")));
    assert_eq!(store.tenant_by_client_secret("guess").await.unwrap(), None);
    assert_eq!(store.tenant_by_client_secret("").await.unwrap(), None);

    // Only the digest is stored: the secret appears nowhere in the row.
    let (row, digest): (String, Vec<u8>) =
        sqlx::query_as("SELECT t::text, client_secret_sha256 FROM tenants t WHERE id = 'acme'")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert!(!row.contains(&secret), "{row}");
    assert_eq!(digest, client_secret_digest(&secret));

    // Rotation: the old clientId stops working, the new one works.
    let rotated = store.rotate_client_secret(&tid("acme")).await.unwrap();
    assert_ne!(rotated, secret);
    assert_eq!(store.tenant_by_client_secret(&secret).await.unwrap(), None);
    let found = store.tenant_by_client_secret(&rotated).await.unwrap();
    assert_eq!(found.map(|t| t.id), Some(tid("acme")));
    let missing = store
        .rotate_client_secret(&tid("nobody"))
        .await
        .unwrap_err();
    assert!(
        matches!(&missing, CentralError::NotFound(m) if m == "no tenant nobody"),
        "{missing}"
    );

    // An inactive tenant's clientId does not log in, but the tenant is still listed.
    assert!(store.set_tenant_active(&tid("acme"), false).await.unwrap());
    assert_eq!(store.tenant_by_client_secret(&rotated).await.unwrap(), None);
    assert!(!store.tenant(&tid("acme")).await.unwrap().unwrap().active);
    assert!(
        !store
            .set_tenant_active(&tid("nobody"), false)
            .await
            .unwrap()
    );
}

#[sqlx::test(migrator = "calldesk_central::MIGRATOR")]
async fn duplicate_and_invalid_tenants_are_refused_with_clear_messages(pool: PgPool) {
    let store = CentralStore::from_pool(pool);
    store.add_tenant(&acme()).await.unwrap();

    let same_number = NewTenant {
        id: tid("acme2"),
        ..acme()
    };
    let e = store.add_tenant(&same_number).await.unwrap_err();
    assert!(
        matches!(&e, CentralError::Duplicate { what } if what == "a tenant with number 0367 already exists"),
        "{e:?}"
    );
    let same_id = NewTenant {
        number: "0368".into(),
        ..acme()
    };
    let e = store.add_tenant(&same_id).await.unwrap_err();
    assert!(
        matches!(&e, CentralError::Duplicate { what } if what == "a tenant with id acme already exists"),
        "{e:?}"
    );

    let invalid = [
        NewTenant {
            number: "03a7".into(),
            ..same_number.clone()
        },
        NewTenant {
            number: "".into(),
            ..same_number.clone()
        },
        NewTenant {
            region: "Russia".into(),
            ..same_number.clone()
        },
        NewTenant {
            region: "QQ".into(),
            ..same_number.clone()
        },
        NewTenant {
            name: "  ".into(),
            ..same_number.clone()
        },
        NewTenant {
            pbx: PbxConfig::Asterisk {
                host: "pbx".into(),
                port: 5038,
                user: "crm".into(),
                // A secret where the variable's name belongs.
                secret_env: "s3cr3t value!".into(),
                tls: false,
                dialplan: calldesk_central::AmiDialplan::default(),
            },
            ..same_number.clone()
        },
        NewTenant {
            pbx: PbxConfig::Asterisk {
                host: "pbx".into(),
                port: 0,
                user: "crm".into(),
                secret_env: "SECRET".into(),
                tls: false,
                dialplan: calldesk_central::AmiDialplan::default(),
            },
            ..same_number.clone()
        },
        NewTenant {
            pbx: PbxConfig::Asterisk {
                host: "pbx".into(),
                port: 5038,
                user: "crm".into(),
                secret_env: "SECRET".into(),
                tls: false,
                dialplan: calldesk_central::AmiDialplan {
                    tech: "iax2".into(),
                    ..calldesk_central::AmiDialplan::default()
                },
            },
            ..same_number.clone()
        },
        NewTenant {
            pbx: PbxConfig::Asterisk {
                host: "pbx".into(),
                port: 5038,
                user: "crm".into(),
                secret_env: "SECRET".into(),
                tls: false,
                dialplan: calldesk_central::AmiDialplan {
                    recordings_dir: Some("spool/../../etc".into()),
                    ..calldesk_central::AmiDialplan::default()
                },
            },
            ..same_number.clone()
        },
        NewTenant {
            pbx: PbxConfig::Mango {
                api_url: Some("ftp://mango".into()),
                key: "k".into(),
                salt_env: "SALT".into(),
            },
            ..same_number.clone()
        },
        NewTenant {
            pbx: PbxConfig::Mango {
                api_url: None,
                key: "".into(),
                salt_env: "SALT".into(),
            },
            ..same_number.clone()
        },
    ];
    for t in invalid {
        let e = store.add_tenant(&t).await.unwrap_err();
        assert!(matches!(e, CentralError::Invalid(_)), "{t:?}: {e:?}");
    }
    assert_eq!(
        store.tenants().await.unwrap().len(),
        1,
        "nothing was written"
    );
}

#[sqlx::test(migrator = "calldesk_central::MIGRATOR")]
async fn upsert_tenant_fills_defaults_and_update_tenant_replaces_the_config(pool: PgPool) {
    let store = CentralStore::from_pool(pool);
    let id = tid("legacy");
    store
        .upsert_tenant(&id, "Legacy", PbxKind::Asterisk)
        .await
        .unwrap();
    let t = store.tenant(&id).await.unwrap().unwrap();
    assert_eq!(t.number, "", "not set");
    assert_eq!(t.region, "RU");
    assert_eq!(t.pbx, PbxConfig::default_for(PbxKind::Asterisk));
    // No clientId until one is issued.
    assert_eq!(store.tenant_by_client_secret("").await.unwrap(), None);

    let mut configured = t.clone();
    configured.number = "777".into();
    configured.pbx = asterisk();
    assert!(store.update_tenant(&configured).await.unwrap());
    // Renaming keeps the settings of the same kind; changing the kind resets them.
    store
        .upsert_tenant(&id, "Legacy Ltd", PbxKind::Asterisk)
        .await
        .unwrap();
    let t = store.tenant(&id).await.unwrap().unwrap();
    assert_eq!((t.name.as_str(), t.number.as_str()), ("Legacy Ltd", "777"));
    assert_eq!(t.pbx.kind(), PbxKind::Asterisk);
    assert!(matches!(&t.pbx, PbxConfig::Asterisk { host, .. } if host == "pbx.acme.example"));
    store
        .upsert_tenant(&id, "Legacy Ltd", PbxKind::Mango)
        .await
        .unwrap();
    let t = store.tenant(&id).await.unwrap().unwrap();
    assert_eq!(t.pbx, PbxConfig::default_for(PbxKind::Mango));

    let secret = store.rotate_client_secret(&id).await.unwrap();
    let found = store.tenant_by_client_secret(&secret).await.unwrap();
    assert_eq!(found.map(|t| t.id), Some(id.clone()));

    configured.id = tid("ghost");
    assert!(!store.update_tenant(&configured).await.unwrap());
}

fn operator(tenant: &str, login: &str, ext: &str, hash: &str) -> NewOperator {
    NewOperator {
        tenant: tid(tenant),
        login: login.into(),
        name: Some(format!("{login} the operator")),
        password_hash: hash.into(),
        role: Role::Operator,
        extension: Extension::new(ext).unwrap(),
        sip: None,
    }
}

#[sqlx::test(migrator = "calldesk_central::MIGRATOR")]
async fn operators_are_unique_per_tenant_and_log_in_by_login(pool: PgPool) {
    let store = CentralStore::from_pool(pool);
    demo_tenant(&store, "acme", "1").await;
    demo_tenant(&store, "globex", "2").await;
    let hash = hash_password("correct horse").unwrap();

    let anna = store
        .add_operator(&NewOperator {
            role: Role::Supervisor,
            sip: Some("sip:anna@acme.mangosip.ru".into()),
            ..operator("acme", "anna", "101", &hash)
        })
        .await
        .unwrap();
    assert!(anna.id > 0);
    assert_eq!(anna.tenant, tid("acme"));
    assert_eq!(anna.role, Role::Supervisor);
    assert_eq!(anna.extension.as_str(), "101");
    assert_eq!(anna.sip.as_deref(), Some("sip:anna@acme.mangosip.ru"));
    assert!(anna.active);
    let boris = store
        .add_operator(&operator("acme", "Boris", "102", &hash))
        .await
        .unwrap();
    // The same login and extension in another tenant are another operator.
    let other_anna = store
        .add_operator(&operator("globex", "anna", "101", &hash))
        .await
        .unwrap();
    assert_ne!(other_anna.id, anna.id);

    let dup = |e: CentralError| match e {
        CentralError::Duplicate { what } => what,
        other => panic!("expected Duplicate, got {other:?}"),
    };
    let e = store
        .add_operator(&operator("acme", "ANNA", "103", &hash))
        .await
        .unwrap_err();
    assert_eq!(
        dup(e),
        "operator login `ANNA` already exists in tenant acme"
    );
    let e = store
        .add_operator(&operator("acme", "vera", "101", &hash))
        .await
        .unwrap_err();
    assert_eq!(dup(e), "extension 101 is already taken in tenant acme");
    let e = store
        .add_operator(&NewOperator {
            sip: Some("sip:anna@acme.mangosip.ru".into()),
            ..operator("acme", "vera", "104", &hash)
        })
        .await
        .unwrap_err();
    assert_eq!(
        dup(e),
        "SIP address `sip:anna@acme.mangosip.ru` is already taken in tenant acme"
    );

    for bad in [
        operator("acme", "anna k", "105", &hash),
        operator("acme", "", "105", &hash),
        operator("acme", "vera", "105", ""),
    ] {
        let e = store.add_operator(&bad).await.unwrap_err();
        assert!(matches!(e, CentralError::Invalid(_)), "{bad:?}: {e:?}");
    }
    let e = store
        .add_operator(&operator("nobody", "vera", "105", &hash))
        .await
        .unwrap_err();
    assert!(
        matches!(&e, CentralError::NotFound(m) if m == "no tenant nobody"),
        "{e:?}"
    );

    // Login in any case; the hash verifies the password.
    let (found, stored) = store
        .operator_for_login(&tid("acme"), "Anna")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found, anna);
    assert!(verify_password("correct horse", &stored));
    assert!(!verify_password("wrong horse", &stored));
    assert_eq!(
        store
            .operator_for_login(&tid("acme"), "nobody")
            .await
            .unwrap(),
        None
    );
    // Scoped by tenant.
    let (found, _) = store
        .operator_for_login(&tid("globex"), "anna")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found.id, other_anna.id);

    // Inactive operators, and operators of inactive tenants, do not log in.
    assert!(
        store
            .set_operator_active(&tid("acme"), boris.id, false)
            .await
            .unwrap()
    );
    assert_eq!(
        store
            .operator_for_login(&tid("acme"), "boris")
            .await
            .unwrap(),
        None
    );
    assert!(
        !store
            .set_operator_active(&tid("globex"), boris.id, false)
            .await
            .unwrap()
    );
    assert!(
        store
            .set_tenant_active(&tid("globex"), false)
            .await
            .unwrap()
    );
    assert_eq!(
        store
            .operator_for_login(&tid("globex"), "anna")
            .await
            .unwrap(),
        None
    );

    // Listing by login; lookups by id are scoped by tenant.
    let logins: Vec<(String, bool)> = store
        .operators(&tid("acme"))
        .await
        .unwrap()
        .into_iter()
        .map(|o| (o.login, o.active))
        .collect();
    assert_eq!(logins, [("anna".into(), true), ("Boris".into(), false)]);
    assert_eq!(
        store.operator(&tid("acme"), anna.id).await.unwrap(),
        Some(anna.clone())
    );
    assert_eq!(store.operator(&tid("globex"), anna.id).await.unwrap(), None);

    // A new password replaces the old one.
    let new_hash = hash_password("battery staple").unwrap();
    assert!(
        store
            .set_operator_password(&tid("acme"), anna.id, &new_hash)
            .await
            .unwrap()
    );
    let (_, stored) = store
        .operator_for_login(&tid("acme"), "anna")
        .await
        .unwrap()
        .unwrap();
    assert!(verify_password("battery staple", &stored));
    assert!(!verify_password("correct horse", &stored));
}

#[test]
fn roles_have_names_and_supervisors() {
    for role in [Role::Operator, Role::Supervisor, Role::Admin] {
        assert_eq!(Role::from_name(role.as_str()), Some(role));
    }
    assert_eq!(Role::from_name("root"), None);
    assert!(!Role::Operator.supervises());
    assert!(Role::Supervisor.supervises());
    assert!(Role::Admin.supervises());
}
