//! History search against a real SQLite file: numbers by partial digits in any format, names
//! and companies (Cyrillic too) by part, filters, paging, re-stored calls, and a brute-force
//! cross-check over a few thousand synthetic calls.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use calldesk_store::{HistoryQuery, LocalStore};
use calldesk_wire::{CallStatusView, CallView, DirectionView};

async fn store(name: &str) -> LocalStore {
    let dir = std::env::temp_dir().join(format!("calldesk-search-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    LocalStore::open(&dir.join("h.sqlite3")).await.unwrap()
}

fn ids(calls: &[CallView]) -> Vec<String> {
    calls.iter().map(|c| c.id.clone()).collect()
}

fn text(t: &str) -> HistoryQuery {
    HistoryQuery {
        text: t.to_owned(),
        limit: Some(500),
        ..HistoryQuery::default()
    }
}

#[tokio::test]
async fn numbers_names_and_companies_are_found_by_any_part() {
    let s = store("parts").await;
    let mut a = common::call(1);
    a.from.raw = "8 (495) 123-45-67".into();
    a.from.e164 = Some("+74951234567".into());
    a.from.name = Some("Остап Бендер".into());
    a.company = Some("Рога и копыта".into());
    let mut b = common::call(2);
    b.from.raw = "+7 916 555 00 11".into();
    b.from.e164 = Some("+79165550011".into());
    b.from.name = Some("Anna Karenina".into());
    b.company = None;
    for c in [&a, &b] {
        s.save_ended(c).await.unwrap();
    }
    for (query, want) in [
        ("4567", vec!["call-1"]),
        ("+7 (495) 123-45-67", vec!["call-1"]),
        ("74951234567", vec!["call-1"]),
        ("495 123", vec!["call-1"]),
        ("555-00", vec!["call-2"]),
        ("бендер", vec!["call-1"]),
        ("ОСТАП", vec!["call-1"]),
        ("копыт", vec!["call-1"]),
        ("karen", vec!["call-2"]),
        ("7", vec!["call-2", "call-1"]),
        ("anna 916", vec!["call-2"]),
        ("anna 495", vec![]),
        ("\"drop table", vec![]),
        ("50%", vec![]),
    ] {
        let page = s.search_calls(&text(query)).await.unwrap();
        assert_eq!(ids(&page.calls), want, "query {query:?}");
    }
}

#[tokio::test]
async fn filters_pages_and_restored_calls() {
    let s = store("filters").await;
    for i in 0..300 {
        s.save_ended(&common::call(i)).await.unwrap();
    }
    // Storing a call again (a late update) keeps one row and its place.
    let mut again = common::call(10);
    again.from.name = Some("Late Name".into());
    s.save_ended(&again).await.unwrap();
    let late = s.search_calls(&text("late name")).await.unwrap();
    assert_eq!(ids(&late.calls), ["call-10"]);

    let all: Vec<CallView> = (0..300).map(common::call).collect();
    let query = HistoryQuery {
        status: Some(CallStatusView::Missed),
        direction: Some(DirectionView::Inbound),
        operator: Some("102".into()),
        since: Some(all[50].started_at),
        until: Some(all[250].started_at),
        limit: Some(2),
        ..HistoryQuery::default()
    };
    let want: Vec<String> = all[50..250]
        .iter()
        .rev()
        .filter(|c| {
            c.status == Some(CallStatusView::Missed)
                && c.direction == DirectionView::Inbound
                && c.operator.as_deref() == Some("102")
        })
        .map(|c| c.id.clone())
        .collect();
    assert!(
        want.len() > 4,
        "the fixture gives several pages: {}",
        want.len()
    );
    let mut got = Vec::new();
    let mut before = None;
    loop {
        let page = s
            .search_calls(&HistoryQuery {
                before,
                ..query.clone()
            })
            .await
            .unwrap();
        assert!(page.calls.len() <= 2);
        got.extend(ids(&page.calls));
        match page.next {
            Some(next) => before = Some(next),
            None => break,
        }
    }
    assert_eq!(got, want);
    let bad = s
        .search_calls(&HistoryQuery {
            limit: Some(0),
            ..HistoryQuery::default()
        })
        .await;
    assert!(bad.unwrap_err().to_string().contains("1 to 500"));
}

#[tokio::test]
async fn digit_search_agrees_with_a_brute_force_scan() {
    let s = store("brute").await;
    let all: Vec<CallView> = (0..3000).map(common::call).collect();
    for c in &all {
        s.save_ended(c).await.unwrap();
    }
    for probe in [7u64, 99, 1234, 2999] {
        let digits = common::caller_digits(probe);
        for part in [&digits[2..6], &digits[5..10], &digits[..]] {
            let want: Vec<String> = all
                .iter()
                .rev()
                .filter(|c| {
                    c.from.raw.contains(part)
                        || c.from.e164.as_deref().is_some_and(|e| e.contains(part))
                })
                .map(|c| c.id.clone())
                .collect();
            let got = s.search_calls(&text(part)).await.unwrap();
            assert_eq!(ids(&got.calls), want, "part {part}");
        }
    }
}
