//! The contacts cache: the hub's directory on the desk ([`LocalStore::replace_contacts`],
//! [`LocalStore::contact_for`]), so a caller is named with the hub away.

use crate::{LocalStore, StoreError};

/// A contact as the cache keeps it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
pub struct CachedContact {
    pub id: i64,
    pub name: String,
    #[serde(default)]
    pub company: Option<String>,
    /// E.164.
    #[serde(default)]
    pub phones: Vec<String>,
}

impl LocalStore {
    /// Replaces the whole cache with `contacts` in one transaction (what the hub no longer has
    /// goes); returns how many phones it holds now.
    pub async fn replace_contacts(&self, contacts: &[CachedContact]) -> Result<u64, StoreError> {
        let rows = serde_json::Value::Array(
            contacts
                .iter()
                .map(|c| serde_json::json!([c.id, c.name, c.company]))
                .collect(),
        );
        let phones = serde_json::Value::Array(
            contacts
                .iter()
                .flat_map(|c| c.phones.iter().map(move |p| serde_json::json!([p, c.id])))
                .collect(),
        );
        let mut tx = self.pool.begin().await?;
        sqlx::query("DELETE FROM contacts")
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT INTO contacts (id, name, company)
             SELECT value ->> 0, value ->> 1, value ->> 2 FROM json_each(?) WHERE true
             ON CONFLICT (id) DO NOTHING",
        )
        .bind(rows.to_string())
        .execute(&mut *tx)
        .await?;
        let added = sqlx::query(
            "INSERT INTO contact_phones (e164, contact_id)
             SELECT value ->> 0, value ->> 1 FROM json_each(?) WHERE true
             ON CONFLICT DO NOTHING",
        )
        .bind(phones.to_string())
        .execute(&mut *tx)
        .await?
        .rows_affected();
        tx.commit().await?;
        Ok(added)
    }

    /// Who calls from `e164`, as the cache knows: (name, company) of the contact with that
    /// phone (the lowest id when several share it).
    pub async fn contact_for(
        &self,
        e164: &str,
    ) -> Result<Option<(String, Option<String>)>, StoreError> {
        Ok(sqlx::query_as(
            "SELECT c.name, c.company FROM contact_phones p JOIN contacts c ON c.id = p.contact_id
             WHERE p.e164 = ? ORDER BY c.id LIMIT 1",
        )
        .bind(e164)
        .fetch_optional(&self.pool)
        .await?)
    }
}
