//! calldesk desktop store (layer 1): the operator's call history in a local SQLite file.
//!
//! [`LocalStore::open`] creates the file if needed, switches it to WAL (readers never block the
//! writer; a crash loses at most the transaction in flight) and applies `migrations/local`.
//! The store keeps finished calls ([`LocalStore::save_ended_call`], idempotent by call id) and
//! serves the most recent ones as UI views ([`LocalStore::recent_calls`]).
//!
//! It also keeps this desk's after-call work (notes, dispositions, tags) and missed-calls
//! worklist (`worklist.rs`) for the Direct and Demo profiles.
//!
//! History search (`search.rs`, [`LocalStore::search_calls`]): numbers by any three or more
//! digits, names/companies/queues by any three or more letters (FTS5 trigram index kept by
//! triggers), with period, status, direction and operator filters, newest first, paged.
//!
//! Invariant: only this crate holds SQL for the local database. A later issue adds the outbox
//! here.
//!
//! Tested against a real SQLite file in a temp dir (unit tests below).

use std::path::Path;
use std::str::FromStr;

use calldesk_calls::{CallStatus, Direction};
use calldesk_wire::{
    AfterCall, CallNote, CallStateView, CallView, ChangeKind, PartyView, SyncChange,
};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions};
use sqlx::{Row, sqlite::SqliteRow};

mod contacts;
mod outbox;
mod search;
mod worklist;

pub use contacts::CachedContact;
pub use outbox::{OutboxCounts, PulledCall, RefusedChange};
pub use search::{HistoryPage, HistoryQuery};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot open the call history database {path}: {source}")]
    Open { path: String, source: sqlx::Error },
    #[error("cannot update the call history database schema: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("call history database error: {0}")]
    Sql(#[from] sqlx::Error),
    #[error("the call history database holds an unknown {column} `{value}`; the file is damaged")]
    Corrupt { column: String, value: String },
    #[error("call {0} is still live; only ended calls are stored")]
    NotEnded(String),
    /// A value refused (a bad tag) or an item that is not there; the text says what to fix.
    #[error("{0}")]
    Invalid(String),
}

/// The desktop's SQLite database.
#[derive(Debug, Clone)]
pub struct LocalStore {
    pool: SqlitePool,
    /// The hub and tenant changes are queued for (`None`: they stay on this desk).
    target: Option<std::sync::Arc<str>>,
}

impl LocalStore {
    /// Opens (creating if needed) the database at `path` and migrates it.
    pub async fn open(path: &Path) -> Result<Self, StoreError> {
        let open_err = |source| StoreError::Open {
            path: path.display().to_string(),
            source,
        };
        let options = SqliteConnectOptions::from_str("sqlite:")
            .map_err(open_err)?
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .foreign_keys(true);
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(options)
            .await
            .map_err(open_err)?;
        sqlx::migrate!("../../migrations/local").run(&pool).await?;
        Ok(Self { pool, target: None })
    }

    /// Stores an ended call (as the UI saw it); storing the same call again replaces it
    /// (idempotent).
    pub async fn save_ended(&self, view: &CallView) -> Result<(), StoreError> {
        self.save_ended_many(std::slice::from_ref(view)).await
    }

    /// Stores ended calls in one transaction (all or none), as [`LocalStore::save_ended`].
    pub async fn save_ended_many(&self, views: &[CallView]) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        for view in views {
            upsert_ended(&mut tx, view).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Adds a note (idempotent by `note.id`: the same note twice is kept once) and queues it
    /// for the hub (the note's id is the change's).
    pub async fn add_note(&self, call_id: &str, note: &CallNote) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        let added = sqlx::query(
            "INSERT INTO notes (id, call_id, text, created_at, author) VALUES (?, ?, ?, ?, ?)
             ON CONFLICT (id) DO NOTHING",
        )
        .bind(&note.id)
        .bind(call_id)
        .bind(&note.text)
        .bind(note.created_at)
        .bind(&note.author)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if added == 1 {
            self.queue(
                &mut tx,
                call_id,
                note.created_at,
                ChangeKind::Note {
                    text: note.text.clone(),
                },
                Some(note.id.clone()),
            )
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Sets (replaces) the disposition of a call and queues it for the hub.
    pub async fn set_disposition(
        &self,
        call_id: &str,
        code: &str,
        at: i64,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "INSERT INTO dispositions (call_id, code, set_at) VALUES (?, ?, ?)
             ON CONFLICT (call_id) DO UPDATE SET code = excluded.code, set_at = excluded.set_at",
        )
        .bind(call_id)
        .bind(code)
        .bind(at)
        .execute(&mut *tx)
        .await?;
        self.queue(
            &mut tx,
            call_id,
            at,
            ChangeKind::Disposition {
                code: code.to_owned(),
            },
            None,
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Queues a change for the sync target, if there is one, in the caller's transaction.
    pub(crate) async fn queue(
        &self,
        tx: &mut sqlx::Transaction<'_, sqlx::Sqlite>,
        call_id: &str,
        at: i64,
        change: ChangeKind,
        id: Option<String>,
    ) -> Result<(), StoreError> {
        let Some(target) = &self.target else {
            return Ok(());
        };
        let change = SyncChange {
            id: id.unwrap_or_else(outbox::new_id),
            call_id: call_id.to_owned(),
            at,
            change,
        };
        outbox::enqueue(tx, target, &change).await
    }

    /// The notes (oldest first) and disposition of a call.
    pub async fn after_call(&self, call_id: &str) -> Result<AfterCall, StoreError> {
        let notes = sqlx::query(
            "SELECT id, text, created_at, author FROM notes WHERE call_id = ?
             ORDER BY created_at, id",
        )
        .bind(call_id)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(|r| {
            Ok(CallNote {
                id: r.try_get("id")?,
                text: r.try_get("text")?,
                author: r.try_get("author")?,
                created_at: r.try_get("created_at")?,
            })
        })
        .collect::<Result<Vec<_>, sqlx::Error>>()?;
        let disposition = sqlx::query_scalar("SELECT code FROM dispositions WHERE call_id = ?")
            .bind(call_id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(AfterCall {
            notes,
            disposition,
            tags: self.tags(call_id).await?,
        })
    }

    /// The calls that ended at or after `since` (unix ms), newest first, at most `limit`.
    pub async fn calls_since(&self, since: i64, limit: u32) -> Result<Vec<CallView>, StoreError> {
        let rows =
            sqlx::query("SELECT * FROM calls WHERE ended_at >= ? ORDER BY ended_at DESC LIMIT ?")
                .bind(since)
                .bind(limit)
                .fetch_all(&self.pool)
                .await?;
        rows.iter().map(row_to_view).collect()
    }

    /// The ended calls with `e164` as the other party, newest first (the pop's "last calls").
    pub async fn calls_with(&self, e164: &str, limit: u32) -> Result<Vec<CallView>, StoreError> {
        let rows = sqlx::query(
            "SELECT * FROM calls WHERE from_e164 = ?1 OR to_e164 = ?1 ORDER BY ended_at DESC LIMIT ?2",
        )
        .bind(e164)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(row_to_view).collect()
    }

    /// The `limit` most recently ended calls, newest first.
    pub async fn recent_calls(&self, limit: u32) -> Result<Vec<CallView>, StoreError> {
        let rows = sqlx::query("SELECT * FROM calls ORDER BY ended_at DESC LIMIT ?")
            .bind(limit)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(row_to_view).collect()
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// One ended call's row (and, by trigger, its search terms).
pub(crate) async fn upsert_ended(
    tx: &mut sqlx::Transaction<'_, sqlx::Sqlite>,
    view: &CallView,
) -> Result<(), StoreError> {
    let (Some(status), Some(ended_at), CallStateView::Ended) =
        (view.status, view.ended_at, view.state)
    else {
        return Err(StoreError::NotEnded(view.id.clone()));
    };
    let (digits, words) = search::terms(view);
    // An upsert, not REPLACE: the call keeps its rowid (the search index's key and the
    // history's order).
    sqlx::query(
        "INSERT INTO calls (id, direction, from_raw, from_e164, from_display, from_name,
            to_raw, to_e164, to_display, status, operator, started_at, answered_at, ended_at,
            ring_seconds, talk_seconds, hangup_cause, company, queue, rang, recorded_at,
            search_digits, search_words, recordings)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
         ON CONFLICT (id) DO UPDATE SET direction = excluded.direction,
            from_raw = excluded.from_raw, from_e164 = excluded.from_e164,
            from_display = excluded.from_display, from_name = excluded.from_name,
            to_raw = excluded.to_raw, to_e164 = excluded.to_e164,
            to_display = excluded.to_display, status = excluded.status,
            operator = excluded.operator, started_at = excluded.started_at,
            answered_at = excluded.answered_at, ended_at = excluded.ended_at,
            ring_seconds = excluded.ring_seconds, talk_seconds = excluded.talk_seconds,
            hangup_cause = excluded.hangup_cause, company = excluded.company,
            queue = excluded.queue, rang = excluded.rang,
            -- When this desk first stored the call: the worklist compares closings and claims
            -- with it, so storing the call again (a pull) must not make it news.
            recorded_at = coalesce(calls.recorded_at, excluded.recorded_at),
            search_digits = excluded.search_digits, search_words = excluded.search_words,
            recordings = excluded.recordings",
    )
    .bind(&view.id)
    .bind(view.direction.as_str())
    .bind(&view.from.raw)
    .bind(&view.from.e164)
    .bind(&view.from.display)
    .bind(&view.from.name)
    .bind(&view.to.raw)
    .bind(&view.to.e164)
    .bind(&view.to.display)
    .bind(status.as_str())
    .bind(&view.operator)
    .bind(view.started_at)
    .bind(view.answered_at)
    .bind(ended_at)
    .bind(view.ring_seconds)
    .bind(view.talk_seconds)
    .bind(&view.hangup_cause)
    .bind(&view.company)
    .bind(&view.queue)
    .bind(view.rang.join(" "))
    .bind(wall_clock_millis())
    .bind(digits)
    .bind(words)
    .bind(serde_json::to_string(&view.recordings).unwrap_or_else(|_| "[]".to_owned()))
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// This desk's clock (unix ms): when a call is stored (what the worklist's closing and claims
/// compare with), when a note is written.
pub fn wall_clock_millis() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

fn row_to_view(row: &SqliteRow) -> Result<CallView, StoreError> {
    // The CHECK constraints allow only these names; anything else is a damaged file.
    let corrupt = |column: &str, value: String| StoreError::Corrupt {
        column: column.to_owned(),
        value,
    };
    let direction: String = row.try_get("direction")?;
    let direction =
        Direction::from_name(&direction).ok_or_else(|| corrupt("direction", direction))?;
    let status: String = row.try_get("status")?;
    let status = CallStatus::from_name(&status).ok_or_else(|| corrupt("status", status))?;
    Ok(CallView {
        id: row.try_get("id")?,
        direction: direction.into(),
        from: PartyView {
            raw: row.try_get("from_raw")?,
            e164: row.try_get("from_e164")?,
            display: row.try_get("from_display")?,
            name: row.try_get("from_name")?,
        },
        to: PartyView {
            raw: row.try_get("to_raw")?,
            e164: row.try_get("to_e164")?,
            display: row.try_get("to_display")?,
            name: None,
        },
        state: CallStateView::Ended,
        status: Some(status.into()),
        operator: row.try_get("operator")?,
        started_at: row.try_get("started_at")?,
        answered_at: row.try_get("answered_at")?,
        ended_at: row.try_get("ended_at")?,
        ring_seconds: row.try_get("ring_seconds")?,
        talk_seconds: row.try_get("talk_seconds")?,
        hangup_cause: row.try_get("hangup_cause")?,
        company: row.try_get("company")?,
        queue: row.try_get("queue")?,
        on_hold: false,
        rang: row
            .try_get::<String, _>("rang")?
            .split_whitespace()
            .map(str::to_owned)
            .collect(),
        monitors: Vec::new(),
        event_at: None,
        recordings: {
            let text: String = row.try_get("recordings")?;
            serde_json::from_str(&text).map_err(|_| corrupt("recordings", text))?
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use calldesk_calls::{
        CallBook, CallEvent, CallEventKind, CallId, Direction, NumberPlan, TenantId, Timestamp,
        UpdateKind,
    };
    use calldesk_wire::CallbackOutcome;

    fn ended_call(id: &str, start_ms: i64, answered: bool) -> CallView {
        let plan = NumberPlan::new("RU").unwrap();
        let mut book = CallBook::new(TenantId::new("demo").unwrap());
        let call = CallId::new(id).unwrap();
        let mut apply = |ms: i64, kind| {
            book.apply(&CallEvent {
                call: call.clone(),
                at: Timestamp::from_unix_millis(start_ms + ms),
                kind,
            })
            .unwrap()
        };
        apply(
            0,
            CallEventKind::Started {
                direction: Direction::Inbound,
                from: plan
                    .party("84951234567")
                    .with_name(Some("Иван Петров".into())),
                to: plan.party("101"),
            },
        );
        if answered {
            apply(2000, CallEventKind::Answered { extension: None });
        }
        let update = apply(
            7000,
            CallEventKind::Ended {
                cause: None,
                status: None,
            },
        )
        .unwrap();
        assert_eq!(update.kind, UpdateKind::Ended);
        let mut view = CallView::from(&update.call);
        view.company = Some("Рога и копыта".into());
        view.rang = vec!["101".into(), "102".into()];
        view.recordings = vec![calldesk_wire::RecordingStatus {
            name: "in-101.wav".into(),
            state: "stored".into(),
            error: None,
        }];
        view
    }

    /// A stored view reads back as it was saved, but for what only a live call has.
    fn as_stored(view: &CallView) -> CallView {
        CallView {
            on_hold: false,
            event_at: None,
            monitors: Vec::new(),
            ..view.clone()
        }
    }

    #[tokio::test]
    async fn stores_ended_calls_idempotently_and_reads_newest_first() {
        let dir = std::env::temp_dir().join(format!("calldesk-store-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("t.sqlite3");
        let _ = std::fs::remove_file(&path);
        let store = LocalStore::open(&path).await.unwrap();
        let first = ended_call("1.1", 1_000, true);
        let second = ended_call("1.2", 5_000, false);
        store.save_ended(&first).await.unwrap();
        store.save_ended(&second).await.unwrap();
        store.save_ended(&first).await.unwrap();
        let mut live = first.clone();
        live.state = CallStateView::Talking;
        assert!(matches!(
            store.save_ended(&live).await,
            Err(StoreError::NotEnded(id)) if id == "1.1"
        ));
        store.close().await;

        // Reopen: the data survived and migrations are not re-applied.
        let store = LocalStore::open(&path).await.unwrap();
        let recent = store.recent_calls(10).await.unwrap();
        assert_eq!(recent.len(), 2);
        assert_eq!(recent[0], as_stored(&second));
        assert_eq!(recent[1], as_stored(&first));
        assert_eq!(recent[1].company.as_deref(), Some("Рога и копыта"));
        assert_eq!(recent[1].rang, ["101", "102"]);
        assert_eq!(recent[1].recordings[0].name, "in-101.wav");
        let with = store.calls_with("+74951234567", 10).await.unwrap();
        assert_eq!(with.len(), 2);
        assert!(
            store
                .calls_with("+74950000000", 10)
                .await
                .unwrap()
                .is_empty()
        );
        assert_eq!(recent[1].from.name.as_deref(), Some("Иван Петров"));
        assert_eq!(
            recent[0].status,
            Some(calldesk_wire::CallStatusView::Missed)
        );
        assert_eq!(store.recent_calls(1).await.unwrap().len(), 1);
        // After-call work: notes are idempotent by id, the disposition is replaced.
        let note = |id: &str, at: i64| CallNote {
            id: id.into(),
            text: format!("note {id}"),
            author: None,
            created_at: at,
        };
        store.add_note("1.1", &note("b", 20)).await.unwrap();
        store.add_note("1.1", &note("a", 10)).await.unwrap();
        store.add_note("1.1", &note("a", 10)).await.unwrap();
        store.set_disposition("1.1", "sale", 30).await.unwrap();
        store.set_disposition("1.1", "callback", 40).await.unwrap();
        let after = store.after_call("1.1").await.unwrap();
        assert_eq!(after.notes, vec![note("a", 10), note("b", 20)]);
        assert_eq!(after.disposition.as_deref(), Some("callback"));
        assert_eq!(store.after_call("1.2").await.unwrap(), AfterCall::default());
        let journal: String = sqlx::query_scalar("PRAGMA journal_mode")
            .fetch_one(&store.pool)
            .await
            .unwrap();
        assert_eq!(journal, "wal");
        store.close().await;
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[tokio::test]
    async fn tags_and_the_worklist_follow_the_hubs_rules() {
        let dir = std::env::temp_dir().join(format!("calldesk-worklist-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("w.sqlite3");
        let _ = std::fs::remove_file(&path);
        let store = LocalStore::open(&path).await.unwrap();
        let caller = "+74951234567";
        store
            .save_ended(&ended_call("m1", 1_000, false))
            .await
            .unwrap();
        store
            .save_ended(&ended_call("m2", 9_000, false))
            .await
            .unwrap();

        let list = store.callbacks(0).await.unwrap();
        assert_eq!(list.len(), 1);
        assert_eq!(list[0].number, caller);
        assert_eq!(list[0].missed, 2);
        assert_eq!(list[0].last_call_id, "m2");
        assert_eq!(list[0].name.as_deref(), Some("Иван Петров"));
        assert_eq!(list[0].company.as_deref(), Some("Рога и копыта"));
        assert_eq!(
            (list[0].first_missed_at, list[0].last_missed_at),
            (1_000, 9_000)
        );
        assert!(store.callbacks(2_000).await.unwrap()[0].missed == 1);

        let now = wall_clock_millis();
        let item = store.claim_callback(caller, true, now).await.unwrap();
        assert_eq!(
            (item.claimed_by.as_deref(), item.claimed_at),
            (Some("me"), Some(now))
        );
        let item = store.claim_callback(caller, false, now).await.unwrap();
        assert_eq!(item.claimed_at, None);
        store
            .close_callback(caller, CallbackOutcome::NotNeeded, now)
            .await
            .unwrap();
        assert!(store.callbacks(0).await.unwrap().is_empty());
        assert!(matches!(
            store.claim_callback(caller, true, now).await,
            Err(StoreError::Invalid(m)) if m.contains("no missed calls")
        ));
        // a miss stored after the closing brings the caller back; an answered call settles it
        std::thread::sleep(std::time::Duration::from_millis(5));
        store
            .save_ended(&ended_call("m3", 20_000, false))
            .await
            .unwrap();
        assert_eq!(store.callbacks(0).await.unwrap()[0].last_call_id, "m3");
        store
            .save_ended(&ended_call("ok", 30_000, true))
            .await
            .unwrap();
        assert!(store.callbacks(0).await.unwrap().is_empty());

        // tags: normalised, replaced as a set, read with the after-call work
        let tags = |v: &[&str]| v.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        assert_eq!(
            store
                .set_tags("ok", &tags(&["VIP", "vip", "ремонт"]))
                .await
                .unwrap(),
            ["vip", "ремонт"]
        );
        store.set_tags("ok", &tags(&["later"])).await.unwrap();
        assert_eq!(store.after_call("ok").await.unwrap().tags, ["later"]);
        assert!(matches!(
            store.set_tags("ok", &tags(&["a b"])).await,
            Err(StoreError::Invalid(_))
        ));
        assert_eq!(store.after_call("ok").await.unwrap().tags, ["later"]);
        store.close().await;
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
