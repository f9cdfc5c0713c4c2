//! Notes on calls (idempotent by a client-generated UUID) and dispositions (one per call).

use calldesk_calls::TenantId;
use calldesk_wire::{DispositionView, NoteView};

use crate::{CentralError, CentralStore, check, foreign_key_violation, time};

/// A note or disposition that names a call or operator the tenant does not have.
fn missing(e: sqlx::Error, t: &TenantId, call_id: &str, operator: Option<i64>) -> CentralError {
    match foreign_key_violation(&e).as_deref() {
        Some("call_notes_author_fkey" | "call_dispositions_set_by_fkey") => CentralError::NotFound(
            format!("no operator {} in tenant {t}", operator.unwrap_or_default()),
        ),
        Some(_) => {
            CentralError::NotFound(format!("no call {} in tenant {t}", call_id.escape_debug()))
        }
        None => CentralError::Sql(e),
    }
}

impl CentralStore {
    /// Idempotent by note id (a UUID the client generates); NotFound if the call is not in the
    /// tenant (or `author` is not one of its operators). Re-sending a note returns the stored
    /// one unchanged; a note id already used on another call is `Duplicate`.
    pub async fn add_note(
        &self,
        t: &TenantId,
        call_id: &str,
        note_id: &str,
        author: Option<i64>,
        text: &str,
    ) -> Result<NoteView, CentralError> {
        let note_id = check::note_id(note_id)?;
        let text = check::text("the note", text, check::MAX_NOTE_CHARS)?;
        let (id, stored_call, login, text, at_ms): (String, String, Option<String>, String, i64) =
            sqlx::query_as(
                "WITH n AS (
                    INSERT INTO call_notes (tenant_id, id, pbx_call_id, author_id, text)
                    VALUES ($1, $2::uuid, $3, $4, $5)
                    -- A no-op update, so that RETURNING gives the stored note.
                    ON CONFLICT (tenant_id, id) DO UPDATE SET text = call_notes.text
                    RETURNING id, pbx_call_id, author_id, text, created_at
                 )
                 SELECT n.id::text, n.pbx_call_id, o.login, n.text,
                    floor(extract(epoch FROM n.created_at) * 1000)::int8
                 FROM n LEFT JOIN operators o ON o.tenant_id = $1 AND o.id = n.author_id",
            )
            .bind(t.as_str())
            .bind(&note_id)
            .bind(call_id)
            .bind(author)
            .bind(&text)
            .fetch_one(&self.pool)
            .await
            .map_err(|e| missing(e, t, call_id, author))?;
        if stored_call != call_id {
            return Err(CentralError::Duplicate {
                what: format!("note {note_id} already exists on another call"),
            });
        }
        Ok(NoteView {
            id,
            call_id: stored_call,
            author: login,
            text,
            created_at: time::millis_rfc3339(at_ms),
        })
    }

    /// Sets (or replaces) the call's disposition. Setting the same code by the same operator
    /// again changes nothing (not even the time). NotFound if the call is not in the tenant (or
    /// `by` is not one of its operators).
    pub async fn set_disposition(
        &self,
        t: &TenantId,
        call_id: &str,
        code: &str,
        by: Option<i64>,
    ) -> Result<DispositionView, CentralError> {
        let code = check::disposition_code(code)?;
        let list = self.dispositions(t).await?;
        if !list.iter().any(|c| c == code) {
            return Err(CentralError::Invalid(format!(
                "disposition `{code}` is not in tenant {t}'s list ({})",
                list.join(", ")
            )));
        }
        let (code, login, at_ms): (String, Option<String>, i64) = sqlx::query_as(
            "WITH d AS (
                INSERT INTO call_dispositions (tenant_id, pbx_call_id, code, set_by)
                VALUES ($1, $2, $3, $4)
                ON CONFLICT (tenant_id, pbx_call_id) DO UPDATE SET
                    code = EXCLUDED.code, set_by = EXCLUDED.set_by,
                    set_at = CASE WHEN call_dispositions.code = EXCLUDED.code
                        AND call_dispositions.set_by IS NOT DISTINCT FROM EXCLUDED.set_by
                        THEN call_dispositions.set_at ELSE now() END
                RETURNING code, set_by, set_at
             )
             SELECT d.code, o.login, floor(extract(epoch FROM d.set_at) * 1000)::int8
             FROM d LEFT JOIN operators o ON o.tenant_id = $1 AND o.id = d.set_by",
        )
        .bind(t.as_str())
        .bind(call_id)
        .bind(code)
        .bind(by)
        .fetch_one(&self.pool)
        .await
        .map_err(|e| missing(e, t, call_id, by))?;
        Ok(DispositionView {
            code,
            set_by: login,
            set_at: time::millis_rfc3339(at_ms),
        })
    }

    /// The tenant's disposition list, in the order operators see it (the built-in list when
    /// none was set). NotFound if there is no such tenant.
    pub async fn dispositions(&self, t: &TenantId) -> Result<Vec<String>, CentralError> {
        let row: Option<Option<Vec<String>>> =
            sqlx::query_scalar("SELECT dispositions FROM tenants WHERE id = $1")
                .bind(t.as_str())
                .fetch_optional(&self.pool)
                .await?;
        match row {
            None => Err(CentralError::NotFound(format!("no tenant {t}"))),
            Some(list) => Ok(list.unwrap_or_else(calldesk_wire::default_dispositions)),
        }
    }

    /// Replaces the tenant's disposition list (checked by `calldesk_wire::disposition_list`);
    /// returns it as stored. Calls keep the codes they have.
    pub async fn set_dispositions(
        &self,
        t: &TenantId,
        codes: &[String],
    ) -> Result<Vec<String>, CentralError> {
        let codes = calldesk_wire::disposition_list(codes).map_err(CentralError::Invalid)?;
        let done = sqlx::query("UPDATE tenants SET dispositions = $2 WHERE id = $1")
            .bind(t.as_str())
            .bind(&codes)
            .execute(&self.pool)
            .await?;
        if done.rows_affected() == 0 {
            return Err(CentralError::NotFound(format!("no tenant {t}")));
        }
        Ok(codes)
    }
}
