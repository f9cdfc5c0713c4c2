//! The caller directory: companies and contacts with their E.164 phones, and `identify` (who
//! calls from a number). A phone belongs to exactly one contact or one company; a contact's
//! company is always in the contact's tenant (composite foreign key).

use std::collections::HashMap;

use calldesk_calls::TenantId;
use calldesk_wire::{CallerCard, CardRef};
use serde::{Deserialize, Serialize};

use crate::{CentralError, CentralStore, check, foreign_key_violation};

/// At most this many companies or contacts per list call.
pub const MAX_LIST: i64 = 500;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CompanyInput {
    pub name: String,
    #[serde(default)]
    pub note: Option<String>,
    /// E.164; duplicates are stored once.
    #[serde(default)]
    pub phones: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, sqlx::FromRow)]
pub struct Company {
    pub id: i64,
    pub name: String,
    pub note: Option<String>,
    pub phones: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContactInput {
    pub name: String,
    /// A company of the same tenant (another tenant's id is `NotFound`).
    #[serde(default)]
    pub company_id: Option<i64>,
    #[serde(default)]
    pub position: Option<String>,
    #[serde(default)]
    pub email: Option<String>,
    #[serde(default)]
    pub phones: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, sqlx::FromRow)]
pub struct Contact {
    pub id: i64,
    pub name: String,
    pub company_id: Option<i64>,
    /// The company's name.
    pub company: Option<String>,
    pub position: Option<String>,
    pub email: Option<String>,
    pub phones: Vec<String>,
}

/// One row of a contact import (e.g. a CSV line).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContactImportRow {
    pub name: String,
    /// Found by name (case-insensitive) or created.
    #[serde(default)]
    pub company: Option<String>,
    #[serde(default)]
    pub phones: Vec<String>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImportReport {
    pub contacts: u64,
    pub companies_created: u64,
    pub phones: u64,
}

const COMPANY_SELECT: &str = "SELECT c.id, c.name, c.note,
        ARRAY(SELECT p.e164 FROM phones p
              WHERE p.tenant_id = c.tenant_id AND p.company_id = c.id ORDER BY p.ord) AS phones
    FROM companies c";

const CONTACT_SELECT: &str = "SELECT c.id, c.name, c.company_id, co.name AS company, c.position,
        c.email,
        ARRAY(SELECT p.e164 FROM phones p
              WHERE p.tenant_id = c.tenant_id AND p.contact_id = c.id ORDER BY p.ord) AS phones
    FROM contacts c LEFT JOIN companies co ON co.tenant_id = c.tenant_id AND co.id = c.company_id";

struct CheckedCompany {
    name: String,
    note: Option<String>,
    phones: Vec<String>,
}

fn checked_company(c: &CompanyInput) -> Result<CheckedCompany, CentralError> {
    Ok(CheckedCompany {
        name: check::name("company name", &c.name)?,
        note: check::optional_text("company note", c.note.as_deref())?,
        phones: check::phones(&c.phones)?,
    })
}

struct CheckedContact {
    name: String,
    company_id: Option<i64>,
    position: Option<String>,
    email: Option<String>,
    phones: Vec<String>,
}

fn checked_contact(c: &ContactInput) -> Result<CheckedContact, CentralError> {
    let email = check::optional_line("email", c.email.as_deref())?;
    if let Some(e) = &email
        && (!e.contains('@') || e.contains(char::is_whitespace))
    {
        return Err(CentralError::Invalid(format!(
            "email `{}` is not an address",
            e.escape_debug()
        )));
    }
    Ok(CheckedContact {
        name: check::name("contact name", &c.name)?,
        company_id: c.company_id,
        position: check::optional_line("position", c.position.as_deref())?,
        email,
        phones: check::phones(&c.phones)?,
    })
}

fn ords(n: usize) -> Vec<i32> {
    (1..=i32::try_from(n).unwrap_or(i32::MAX)).collect()
}

/// A write that names a company or tenant that does not exist (in this tenant).
fn directory_write_error(e: sqlx::Error, t: &TenantId, company: Option<i64>) -> CentralError {
    match foreign_key_violation(&e).as_deref() {
        Some("contacts_company_fkey") => CentralError::NotFound(format!(
            "no company {} in tenant {t}",
            company.unwrap_or_default()
        )),
        Some(_) => CentralError::NotFound(format!("no tenant {t}")),
        None => CentralError::Sql(e),
    }
}

/// The advisory-lock key that serialises imports of one tenant (so two imports do not both
/// create the same company).
fn import_lock_key(t: &TenantId) -> i64 {
    crate::replicas::advisory_key(&format!("calldesk-import:{t}"))
}

fn limit(n: i64) -> i64 {
    n.clamp(1, MAX_LIST)
}

impl CentralStore {
    pub async fn create_company(
        &self,
        t: &TenantId,
        c: &CompanyInput,
    ) -> Result<Company, CentralError> {
        let c = checked_company(c)?;
        let id: i64 = sqlx::query_scalar(
            "WITH c AS (
                INSERT INTO companies (tenant_id, name, note) VALUES ($1, $2, $3) RETURNING id
             ), p AS (
                INSERT INTO phones (tenant_id, company_id, e164, ord)
                SELECT $1, c.id, x.e164, x.ord FROM c, unnest($4::text[], $5::int4[]) AS x(e164, ord)
             )
             SELECT id FROM c",
        )
        .bind(t.as_str())
        .bind(&c.name)
        .bind(&c.note)
        .bind(&c.phones)
        .bind(ords(c.phones.len()))
        .fetch_one(&self.pool)
        .await
        .map_err(|e| directory_write_error(e, t, None))?;
        Ok(Company {
            id,
            name: c.name,
            note: c.note,
            phones: c.phones,
        })
    }

    /// Replaces the company's name, note and phones; `None` if the tenant has no such company.
    pub async fn update_company(
        &self,
        t: &TenantId,
        id: i64,
        c: &CompanyInput,
    ) -> Result<Option<Company>, CentralError> {
        let c = checked_company(c)?;
        let mut tx = self.pool.begin().await?;
        let found = sqlx::query(
            "UPDATE companies SET name = $3, note = $4, updated_at = now()
             WHERE tenant_id = $1 AND id = $2",
        )
        .bind(t.as_str())
        .bind(id)
        .bind(&c.name)
        .bind(&c.note)
        .execute(&mut *tx)
        .await?;
        if found.rows_affected() == 0 {
            return Ok(None);
        }
        replace_phones(&mut tx, t, Owner::Company(id), &c.phones).await?;
        tx.commit().await?;
        Ok(Some(Company {
            id,
            name: c.name,
            note: c.note,
            phones: c.phones,
        }))
    }

    /// Deletes the company and its phones; its contacts keep living without a company.
    /// False if the tenant has no such company.
    pub async fn delete_company(&self, t: &TenantId, id: i64) -> Result<bool, CentralError> {
        let mut tx = self.pool.begin().await?;
        // The row lock keeps a contact from being linked to the company meanwhile.
        let found: Option<i64> = sqlx::query_scalar(
            "SELECT id FROM companies WHERE tenant_id = $1 AND id = $2 FOR UPDATE",
        )
        .bind(t.as_str())
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?;
        if found.is_none() {
            return Ok(false);
        }
        sqlx::query(
            "UPDATE contacts SET company_id = NULL, updated_at = now()
             WHERE tenant_id = $1 AND company_id = $2",
        )
        .bind(t.as_str())
        .bind(id)
        .execute(&mut *tx)
        .await?;
        sqlx::query("DELETE FROM companies WHERE tenant_id = $1 AND id = $2")
            .bind(t.as_str())
            .bind(id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(true)
    }

    pub async fn company(&self, t: &TenantId, id: i64) -> Result<Option<Company>, CentralError> {
        let company = sqlx::query_as(&format!(
            "{COMPANY_SELECT} WHERE c.tenant_id = $1 AND c.id = $2"
        ))
        .bind(t.as_str())
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        Ok(company)
    }

    /// Companies whose name contains `search` (any case), by name; `limit` is clamped to
    /// 1..=500.
    pub async fn companies(
        &self,
        t: &TenantId,
        search: Option<&str>,
        limit: i64,
    ) -> Result<Vec<Company>, CentralError> {
        let companies =
            match search.map(str::trim).filter(|s| !s.is_empty()) {
                Some(s) => {
                    sqlx::query_as(&format!(
                        "{COMPANY_SELECT} WHERE c.tenant_id = $1 AND c.name ILIKE $2
                     ORDER BY lower(c.name), c.id LIMIT $3"
                    ))
                    .bind(t.as_str())
                    .bind(format!("%{}%", check::like_escape(s)))
                    .bind(self::limit(limit))
                    .fetch_all(&self.pool)
                    .await?
                }
                None => sqlx::query_as(&format!(
                    "{COMPANY_SELECT} WHERE c.tenant_id = $1 ORDER BY lower(c.name), c.id LIMIT $2"
                ))
                .bind(t.as_str())
                .bind(self::limit(limit))
                .fetch_all(&self.pool)
                .await?,
            };
        Ok(companies)
    }

    pub async fn create_contact(
        &self,
        t: &TenantId,
        c: &ContactInput,
    ) -> Result<Contact, CentralError> {
        let c = checked_contact(c)?;
        let (id, company): (i64, Option<String>) = sqlx::query_as(
            "WITH c AS (
                INSERT INTO contacts (tenant_id, company_id, name, position, email)
                VALUES ($1, $2, $3, $4, $5) RETURNING id, company_id
             ), p AS (
                INSERT INTO phones (tenant_id, contact_id, e164, ord)
                SELECT $1, c.id, x.e164, x.ord FROM c, unnest($6::text[], $7::int4[]) AS x(e164, ord)
             )
             SELECT c.id, co.name FROM c
             LEFT JOIN companies co ON co.tenant_id = $1 AND co.id = c.company_id",
        )
        .bind(t.as_str())
        .bind(c.company_id)
        .bind(&c.name)
        .bind(&c.position)
        .bind(&c.email)
        .bind(&c.phones)
        .bind(ords(c.phones.len()))
        .fetch_one(&self.pool)
        .await
        .map_err(|e| directory_write_error(e, t, c.company_id))?;
        Ok(Contact {
            id,
            name: c.name,
            company_id: c.company_id,
            company,
            position: c.position,
            email: c.email,
            phones: c.phones,
        })
    }

    /// Replaces the contact's fields and phones; `None` if the tenant has no such contact.
    pub async fn update_contact(
        &self,
        t: &TenantId,
        id: i64,
        c: &ContactInput,
    ) -> Result<Option<Contact>, CentralError> {
        let c = checked_contact(c)?;
        let mut tx = self.pool.begin().await?;
        let found = sqlx::query(
            "UPDATE contacts SET company_id = $3, name = $4, position = $5, email = $6,
                updated_at = now()
             WHERE tenant_id = $1 AND id = $2",
        )
        .bind(t.as_str())
        .bind(id)
        .bind(c.company_id)
        .bind(&c.name)
        .bind(&c.position)
        .bind(&c.email)
        .execute(&mut *tx)
        .await
        .map_err(|e| directory_write_error(e, t, c.company_id))?;
        if found.rows_affected() == 0 {
            return Ok(None);
        }
        replace_phones(&mut tx, t, Owner::Contact(id), &c.phones).await?;
        let contact = sqlx::query_as(&format!(
            "{CONTACT_SELECT} WHERE c.tenant_id = $1 AND c.id = $2"
        ))
        .bind(t.as_str())
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(contact)
    }

    /// Deletes the contact and its phones. False if the tenant has no such contact.
    pub async fn delete_contact(&self, t: &TenantId, id: i64) -> Result<bool, CentralError> {
        let done = sqlx::query("DELETE FROM contacts WHERE tenant_id = $1 AND id = $2")
            .bind(t.as_str())
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    pub async fn contact(&self, t: &TenantId, id: i64) -> Result<Option<Contact>, CentralError> {
        let contact = sqlx::query_as(&format!(
            "{CONTACT_SELECT} WHERE c.tenant_id = $1 AND c.id = $2"
        ))
        .bind(t.as_str())
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        Ok(contact)
    }

    /// Contacts whose name contains `search` (any case), by name; `limit` is clamped to
    /// 1..=500.
    /// The tenant's contacts with an id above `after`, by id, at most `limit` (1..=500): the
    /// pages a desk's contacts cache is filled from.
    pub async fn contacts_after(
        &self,
        t: &TenantId,
        after: i64,
        limit: i64,
    ) -> Result<Vec<Contact>, CentralError> {
        Ok(sqlx::query_as(&format!(
            "{CONTACT_SELECT} WHERE c.tenant_id = $1 AND c.id > $2 ORDER BY c.id LIMIT $3"
        ))
        .bind(t.as_str())
        .bind(after)
        .bind(self::limit(limit))
        .fetch_all(&self.pool)
        .await?)
    }

    pub async fn contacts(
        &self,
        t: &TenantId,
        search: Option<&str>,
        limit: i64,
    ) -> Result<Vec<Contact>, CentralError> {
        let contacts =
            match search.map(str::trim).filter(|s| !s.is_empty()) {
                Some(s) => {
                    sqlx::query_as(&format!(
                        "{CONTACT_SELECT} WHERE c.tenant_id = $1 AND c.name ILIKE $2
                     ORDER BY lower(c.name), c.id LIMIT $3"
                    ))
                    .bind(t.as_str())
                    .bind(format!("%{}%", check::like_escape(s)))
                    .bind(self::limit(limit))
                    .fetch_all(&self.pool)
                    .await?
                }
                None => sqlx::query_as(&format!(
                    "{CONTACT_SELECT} WHERE c.tenant_id = $1 ORDER BY lower(c.name), c.id LIMIT $2"
                ))
                .bind(t.as_str())
                .bind(self::limit(limit))
                .fetch_all(&self.pool)
                .await?,
            };
        Ok(contacts)
    }

    /// Who calls from this E.164 number: a contact's phone first (with its company), else a
    /// company's phone; among several owners the lowest id. Anything that is not E.164 (an
    /// extension, an anonymous caller) identifies nobody.
    pub async fn identify(
        &self,
        t: &TenantId,
        e164: &str,
    ) -> Result<Option<CallerCard>, CentralError> {
        if !check::is_e164(e164) {
            return Ok(None);
        }
        let row: Option<CallerRow> = sqlx::query_as(
            "SELECT ct.id AS contact_id, ct.name AS contact, co.id AS company_id,
                co.name AS company
             FROM phones p
             LEFT JOIN contacts ct ON ct.tenant_id = p.tenant_id AND ct.id = p.contact_id
             LEFT JOIN companies co ON co.tenant_id = p.tenant_id
                AND co.id = coalesce(ct.company_id, p.company_id)
             WHERE p.tenant_id = $1 AND p.e164 = $2
             ORDER BY p.contact_id IS NULL, p.contact_id, p.company_id
             LIMIT 1",
        )
        .bind(t.as_str())
        .bind(e164)
        .fetch_optional(&self.pool)
        .await?;
        let card = |id: Option<i64>, name: Option<String>| {
            Some(CardRef {
                id: id?,
                name: name?,
            })
        };
        Ok(row.map(|r| CallerCard {
            number: e164.to_owned(),
            contact: card(r.contact_id, r.contact),
            company: card(r.company_id, r.company),
        }))
    }

    /// One transaction: each row creates a contact; its company is found by name
    /// (case-insensitive) or created. A bad row refuses the whole import (`Invalid`, naming the
    /// row, 1-based). A constant number of round trips, whatever the size.
    pub async fn import_contacts(
        &self,
        t: &TenantId,
        rows: &[ContactImportRow],
    ) -> Result<ImportReport, CentralError> {
        let at_row = |i: usize, e: CentralError| match e {
            CentralError::Invalid(m) => CentralError::Invalid(format!("row {}: {m}", i + 1)),
            other => other,
        };
        // Checked rows: name, company key (lowercase) and phones.
        let mut checked = Vec::with_capacity(rows.len());
        // Distinct company names by lowercase, first spelling kept.
        let mut company_names: Vec<String> = Vec::new();
        let mut company_index: HashMap<String, usize> = HashMap::new();
        for (i, row) in rows.iter().enumerate() {
            let name = check::name("contact name", &row.name).map_err(|e| at_row(i, e))?;
            let phones = check::phones(&row.phones).map_err(|e| at_row(i, e))?;
            let company = check::optional_line("company name", row.company.as_deref())
                .map_err(|e| at_row(i, e))?
                .map(|c| {
                    let key = c.to_lowercase();
                    *company_index.entry(key).or_insert_with(|| {
                        company_names.push(c);
                        company_names.len() - 1
                    })
                });
            checked.push((name, company, phones));
        }
        if checked.is_empty() {
            return Ok(ImportReport::default());
        }

        let mut tx = self.pool.begin().await?;
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(import_lock_key(t))
            .execute(&mut *tx)
            .await?;
        // Existing companies (the oldest of equal names), then the missing ones.
        let existing: Vec<(String, i64)> = sqlx::query_as(
            "SELECT DISTINCT ON (lower(x.n)) x.n, c.id
             FROM unnest($2::text[]) AS x(n)
             JOIN companies c ON c.tenant_id = $1 AND lower(c.name) = lower(x.n)
             ORDER BY lower(x.n), c.id",
        )
        .bind(t.as_str())
        .bind(&company_names)
        .fetch_all(&mut *tx)
        .await?;
        let mut company_ids: HashMap<String, i64> = existing.into_iter().collect();
        let missing: Vec<&String> = company_names
            .iter()
            .filter(|n| !company_ids.contains_key(*n))
            .collect();
        let mut companies_created = 0u64;
        if !missing.is_empty() {
            let created: Vec<(String, i64)> = sqlx::query_as(
                "INSERT INTO companies (tenant_id, name) SELECT $1, n FROM unnest($2::text[]) AS n
                 RETURNING name, id",
            )
            .bind(t.as_str())
            .bind(&missing)
            .fetch_all(&mut *tx)
            .await
            .map_err(|e| directory_write_error(e, t, None))?;
            companies_created = created.len() as u64;
            company_ids.extend(created);
        }

        // Ids first, so contacts and their phones go in as two array inserts.
        let ids: Vec<i64> = sqlx::query_scalar(
            "SELECT nextval(pg_get_serial_sequence('contacts', 'id')) FROM generate_series(1, $1)",
        )
        .bind(i64::try_from(checked.len()).unwrap_or(i64::MAX))
        .fetch_all(&mut *tx)
        .await?;
        if ids.len() != checked.len() {
            return Err(crate::corrupt(format!(
                "asked for {} contact ids, got {}",
                checked.len(),
                ids.len()
            )));
        }
        let mut names = Vec::with_capacity(checked.len());
        let mut companies = Vec::with_capacity(checked.len());
        let (mut phone_owner, mut phone_e164, mut phone_ord) = (Vec::new(), Vec::new(), Vec::new());
        for (id, (name, company, phones)) in ids.iter().zip(checked) {
            names.push(name);
            companies.push(
                company
                    .and_then(|i| company_names.get(i))
                    .and_then(|n| company_ids.get(n))
                    .copied(),
            );
            for (ord, phone) in ords(phones.len()).into_iter().zip(phones) {
                phone_owner.push(*id);
                phone_e164.push(phone);
                phone_ord.push(ord);
            }
        }
        sqlx::query(
            "INSERT INTO contacts (id, tenant_id, company_id, name) OVERRIDING SYSTEM VALUE
             SELECT x.id, $1, x.company_id, x.name
             FROM unnest($2::int8[], $3::int8[], $4::text[]) AS x(id, company_id, name)",
        )
        .bind(t.as_str())
        .bind(&ids)
        .bind(&companies)
        .bind(&names)
        .execute(&mut *tx)
        .await
        .map_err(|e| directory_write_error(e, t, None))?;
        if !phone_owner.is_empty() {
            sqlx::query(
                "INSERT INTO phones (tenant_id, contact_id, e164, ord)
                 SELECT $1, x.id, x.e164, x.ord
                 FROM unnest($2::int8[], $3::text[], $4::int4[]) AS x(id, e164, ord)",
            )
            .bind(t.as_str())
            .bind(&phone_owner)
            .bind(&phone_e164)
            .bind(&phone_ord)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(ImportReport {
            contacts: names.len() as u64,
            companies_created,
            phones: phone_e164.len() as u64,
        })
    }
}

#[derive(sqlx::FromRow)]
struct CallerRow {
    contact_id: Option<i64>,
    contact: Option<String>,
    company_id: Option<i64>,
    company: Option<String>,
}

enum Owner {
    Company(i64),
    Contact(i64),
}

/// Replaces the phones of a company or contact (inside the caller's transaction).
async fn replace_phones(
    tx: &mut sqlx::PgConnection,
    t: &TenantId,
    owner: Owner,
    phones: &[String],
) -> Result<(), CentralError> {
    let (column, id) = match owner {
        Owner::Company(id) => ("company_id", id),
        Owner::Contact(id) => ("contact_id", id),
    };
    sqlx::query(&format!(
        "DELETE FROM phones WHERE tenant_id = $1 AND {column} = $2"
    ))
    .bind(t.as_str())
    .bind(id)
    .execute(&mut *tx)
    .await?;
    if !phones.is_empty() {
        sqlx::query(&format!(
            "INSERT INTO phones (tenant_id, {column}, e164, ord)
             SELECT $1, $2, x.e164, x.ord FROM unnest($3::text[], $4::int4[]) AS x(e164, ord)"
        ))
        .bind(t.as_str())
        .bind(id)
        .bind(phones)
        .bind(ords(phones.len()))
        .execute(&mut *tx)
        .await?;
    }
    Ok(())
}
