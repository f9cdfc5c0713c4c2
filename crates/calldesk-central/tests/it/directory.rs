//! Companies, contacts, phones, caller identification and imports.

use calldesk_central::{
    CentralError, CentralStore, CompanyInput, ContactImportRow, ContactInput, ImportReport,
};
use sqlx::PgPool;

use crate::common::{card, demo_tenant, tid};

fn company(name: &str, phones: &[&str]) -> CompanyInput {
    CompanyInput {
        name: name.into(),
        note: None,
        phones: phones.iter().map(|p| (*p).into()).collect(),
    }
}

fn contact(name: &str, company_id: Option<i64>, phones: &[&str]) -> ContactInput {
    ContactInput {
        name: name.into(),
        company_id,
        position: None,
        email: None,
        phones: phones.iter().map(|p| (*p).into()).collect(),
    }
}

#[sqlx::test(migrator = "calldesk_central::MIGRATOR")]
async fn companies_and_contacts_crud(pool: PgPool) {
    let store = CentralStore::from_pool(pool);
    let acme = tid("acme");
    demo_tenant(&store, "acme", "1").await;

    let horns = store
        .create_company(
            &acme,
            &CompanyInput {
                note: Some("  key account  ".into()),
                ..company(
                    " Horns & Hooves ",
                    &["+74951110000", "+74951110000", "+74951110001"],
                )
            },
        )
        .await
        .unwrap();
    assert_eq!(horns.name, "Horns & Hooves");
    assert_eq!(horns.note.as_deref(), Some("key account"));
    assert_eq!(
        horns.phones,
        ["+74951110000", "+74951110001"],
        "deduplicated, in order"
    );
    assert_eq!(
        store.company(&acme, horns.id).await.unwrap(),
        Some(horns.clone())
    );
    let rogues = store
        .create_company(&acme, &company("Rogues 100% Ltd", &[]))
        .await
        .unwrap();

    // Search: case-insensitive substring; LIKE wildcards are literal.
    let names = |cs: Vec<calldesk_central::Company>| -> Vec<String> {
        cs.into_iter().map(|c| c.name).collect()
    };
    assert_eq!(
        names(store.companies(&acme, Some("HORNS"), 10).await.unwrap()),
        ["Horns & Hooves"]
    );
    assert_eq!(
        names(store.companies(&acme, Some("100%"), 10).await.unwrap()),
        ["Rogues 100% Ltd"]
    );
    assert_eq!(
        names(store.companies(&acme, Some("0% l"), 10).await.unwrap()),
        ["Rogues 100% Ltd"]
    );
    assert!(
        store
            .companies(&acme, Some("1%L"), 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        store
            .companies(&acme, Some("1_0"), 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        names(store.companies(&acme, None, 10).await.unwrap()),
        ["Horns & Hooves", "Rogues 100% Ltd"]
    );
    assert_eq!(store.companies(&acme, None, 1).await.unwrap().len(), 1);
    assert_eq!(
        store.companies(&acme, None, 0).await.unwrap().len(),
        1,
        "clamped to 1"
    );

    // Update replaces the phones.
    let updated = store
        .update_company(
            &acme,
            horns.id,
            &company("Horns and Hooves", &["+74951110002"]),
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(updated.phones, ["+74951110002"]);
    assert_eq!(store.company(&acme, horns.id).await.unwrap(), Some(updated));
    assert_eq!(
        store
            .update_company(&acme, 999_999, &company("X", &[]))
            .await
            .unwrap(),
        None
    );

    // Contacts.
    let ivan = store
        .create_contact(
            &acme,
            &ContactInput {
                position: Some("CEO".into()),
                email: Some("ivan@horns.example".into()),
                ..contact("Ivan Petrov", Some(horns.id), &["+79161234567"])
            },
        )
        .await
        .unwrap();
    assert_eq!(ivan.company.as_deref(), Some("Horns and Hooves"));
    assert_eq!(ivan.company_id, Some(horns.id));
    assert_eq!(
        store.contact(&acme, ivan.id).await.unwrap(),
        Some(ivan.clone())
    );
    let olga = store
        .create_contact(&acme, &contact("Olga", None, &[]))
        .await
        .unwrap();
    assert_eq!(olga.company, None);

    let moved = store
        .update_contact(
            &acme,
            ivan.id,
            &contact(
                "Ivan Petrov",
                Some(rogues.id),
                &["+79161234568", "+79161234567"],
            ),
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(moved.company.as_deref(), Some("Rogues 100% Ltd"));
    assert_eq!(moved.phones, ["+79161234568", "+79161234567"]);
    assert_eq!(moved.position, None, "replaced, not merged");
    assert_eq!(
        store
            .contacts(&acme, Some("ivan"), 10)
            .await
            .unwrap()
            .into_iter()
            .map(|c| c.id)
            .collect::<Vec<_>>(),
        [ivan.id]
    );
    assert_eq!(store.contacts(&acme, None, 10).await.unwrap().len(), 2);

    // Deleting a company unlinks its contacts and drops its phones.
    assert!(store.delete_company(&acme, rogues.id).await.unwrap());
    assert!(!store.delete_company(&acme, rogues.id).await.unwrap());
    let orphan = store.contact(&acme, ivan.id).await.unwrap().unwrap();
    assert_eq!((orphan.company_id, orphan.company), (None, None));
    assert_eq!(orphan.phones, moved.phones);
    assert!(store.delete_company(&acme, horns.id).await.unwrap());
    assert_eq!(store.identify(&acme, "+74951110002").await.unwrap(), None);

    assert!(store.delete_contact(&acme, olga.id).await.unwrap());
    assert!(!store.delete_contact(&acme, olga.id).await.unwrap());
    assert_eq!(store.contact(&acme, olga.id).await.unwrap(), None);

    // Bad values.
    for bad in [
        contact(" ", None, &[]),
        contact("X", None, &["84951234567"]),
        contact("X", None, &["+7 495 123 45 67"]),
        ContactInput {
            email: Some("not an address".into()),
            ..contact("X", None, &[])
        },
    ] {
        let e = store.create_contact(&acme, &bad).await.unwrap_err();
        assert!(matches!(e, CentralError::Invalid(_)), "{bad:?}: {e:?}");
    }
    let e = store
        .create_company(&acme, &company("", &[]))
        .await
        .unwrap_err();
    assert!(matches!(e, CentralError::Invalid(_)), "{e:?}");
}

#[sqlx::test(migrator = "calldesk_central::MIGRATOR")]
async fn identify_prefers_contacts_and_never_crosses_tenants(pool: PgPool) {
    let store = CentralStore::from_pool(pool);
    let (acme, globex) = (tid("acme"), tid("globex"));
    demo_tenant(&store, "acme", "1").await;
    demo_tenant(&store, "globex", "2").await;

    let horns = store
        .create_company(&acme, &company("Horns", &["+74951110000", "+74951110009"]))
        .await
        .unwrap();
    // Ivan shares the company's main line and has his own mobile.
    let ivan = store
        .create_contact(
            &acme,
            &contact("Ivan", Some(horns.id), &["+79160000001", "+74951110000"]),
        )
        .await
        .unwrap();
    let olga = store
        .create_contact(&acme, &contact("Olga", None, &["+79160000002"]))
        .await
        .unwrap();

    assert_eq!(
        store.identify(&acme, "+74951110000").await.unwrap(),
        Some(card(
            "+74951110000",
            Some((ivan.id, "Ivan")),
            Some((horns.id, "Horns"))
        )),
        "a contact's phone beats the company's"
    );
    assert_eq!(
        store.identify(&acme, "+79160000001").await.unwrap(),
        Some(card(
            "+79160000001",
            Some((ivan.id, "Ivan")),
            Some((horns.id, "Horns"))
        ))
    );
    assert_eq!(
        store.identify(&acme, "+74951110009").await.unwrap(),
        Some(card("+74951110009", None, Some((horns.id, "Horns"))))
    );
    assert_eq!(
        store.identify(&acme, "+79160000002").await.unwrap(),
        Some(card("+79160000002", Some((olga.id, "Olga")), None))
    );
    assert_eq!(store.identify(&acme, "+79169999999").await.unwrap(), None);
    assert_eq!(
        store.identify(&acme, "101").await.unwrap(),
        None,
        "an extension"
    );
    assert_eq!(store.identify(&acme, "").await.unwrap(), None);

    // Another tenant never matches acme's phones, and cannot link acme's company.
    assert_eq!(store.identify(&globex, "+74951110000").await.unwrap(), None);
    let e = store
        .create_contact(&globex, &contact("Mallory", Some(horns.id), &[]))
        .await
        .unwrap_err();
    assert!(
        matches!(&e, CentralError::NotFound(m) if *m == format!("no company {} in tenant globex", horns.id)),
        "{e:?}"
    );
    let e = store
        .update_contact(&acme, olga.id, &contact("Olga", Some(i64::MAX), &[]))
        .await
        .unwrap_err();
    assert!(matches!(e, CentralError::NotFound(_)), "{e:?}");
    assert_eq!(store.company(&globex, horns.id).await.unwrap(), None);
    assert_eq!(store.contact(&globex, ivan.id).await.unwrap(), None);
    assert!(store.companies(&globex, None, 10).await.unwrap().is_empty());
    assert!(
        store
            .contacts(&globex, Some("Ivan"), 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(!store.delete_company(&globex, horns.id).await.unwrap());
    assert!(!store.delete_contact(&globex, ivan.id).await.unwrap());
    assert_eq!(
        store
            .update_company(&globex, horns.id, &company("Mine now", &[]))
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        store.company(&acme, horns.id).await.unwrap().unwrap().name,
        "Horns"
    );
}

#[sqlx::test(migrator = "calldesk_central::MIGRATOR")]
async fn imports_find_or_create_companies_in_one_transaction(pool: PgPool) {
    let store = CentralStore::from_pool(pool);
    let acme = tid("acme");
    demo_tenant(&store, "acme", "1").await;
    demo_tenant(&store, "globex", "2").await;
    let horns = store
        .create_company(&acme, &company("Horns", &[]))
        .await
        .unwrap();
    // A company of the same name in another tenant is not acme's.
    store
        .create_company(&tid("globex"), &company("Rogues", &[]))
        .await
        .unwrap();

    let row = |name: &str, company: Option<&str>, phones: &[&str]| ContactImportRow {
        name: name.into(),
        company: company.map(Into::into),
        phones: phones.iter().map(|p| (*p).into()).collect(),
    };
    let report = store
        .import_contacts(
            &acme,
            &[
                row("Ivan", Some("HORNS"), &["+79160000001", "+79160000001"]),
                row("Olga", Some("Rogues"), &["+79160000002", "+74950000002"]),
                row("Petr", Some("rogues "), &[]),
                row("Anna", None, &["+79160000004"]),
            ],
        )
        .await
        .unwrap();
    assert_eq!(
        report,
        ImportReport {
            contacts: 4,
            companies_created: 1,
            phones: 4,
        }
    );
    let contacts = store.contacts(&acme, None, 100).await.unwrap();
    let summary: Vec<(&str, Option<&str>, usize)> = contacts
        .iter()
        .map(|c| (c.name.as_str(), c.company.as_deref(), c.phones.len()))
        .collect();
    assert_eq!(
        summary,
        [
            ("Anna", None, 1),
            ("Ivan", Some("Horns"), 1),
            ("Olga", Some("Rogues"), 2),
            ("Petr", Some("Rogues"), 0),
        ]
    );
    assert_eq!(contacts[1].company_id, Some(horns.id));
    assert_eq!(contacts[2].company_id, contacts[3].company_id);
    assert_eq!(store.companies(&acme, None, 10).await.unwrap().len(), 2);
    let olga = store
        .identify(&acme, "+74950000002")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(olga.contact.map(|c| c.name).as_deref(), Some("Olga"));

    // A bad row refuses the whole import and names the row.
    let e = store
        .import_contacts(
            &acme,
            &[
                row("Vera", Some("New Co"), &[]),
                row("Max", None, &["8 916 000"]),
            ],
        )
        .await
        .unwrap_err();
    assert!(
        matches!(&e, CentralError::Invalid(m) if m.starts_with("row 2: phone `8 916 000`")),
        "{e:?}"
    );
    assert_eq!(store.contacts(&acme, None, 100).await.unwrap().len(), 4);
    assert_eq!(store.companies(&acme, None, 10).await.unwrap().len(), 2);
    assert_eq!(
        store.import_contacts(&acme, &[]).await.unwrap(),
        ImportReport::default()
    );
    // Imported ids do not collide with ids handed out later.
    let later = store
        .create_contact(&acme, &contact("Zoe", None, &[]))
        .await
        .unwrap();
    assert!(contacts.iter().all(|c| c.id < later.id));
}
