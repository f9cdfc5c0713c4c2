-- Search over the call history: numbers by any run of three or more digits (as typed, in any
-- format), and names, companies, queues and operators by any three or more letters. The FTS5
-- index (trigram tokenizer: substring matches) holds only what is searched, computed when a call
-- is stored (`search_digits`, `search_words`); triggers keep it in step with `calls` (rowids
-- shared). `INSERT … ON CONFLICT DO UPDATE` keeps a call's rowid, so newest-stored-first is
-- rowid order.
ALTER TABLE calls ADD COLUMN search_digits TEXT NOT NULL DEFAULT '';
ALTER TABLE calls ADD COLUMN search_words TEXT NOT NULL DEFAULT '';

-- Calls stored before this migration: their digits with the usual separators taken out, their
-- words lower-cased (the app computes both the same way for new calls).
UPDATE calls SET
    search_digits = trim(
        replace(replace(replace(replace(replace(replace(from_raw, '+', ''), ' ', ''), '-', ''), '(', ''), ')', ''), '.', '')
        || ' ' ||
        replace(replace(replace(replace(replace(replace(to_raw, '+', ''), ' ', ''), '-', ''), '(', ''), ')', ''), '.', '')),
    search_words = lower(trim(coalesce(from_name, '') || ' ' || coalesce(company, '') || ' '
        || coalesce(queue, '') || ' ' || coalesce(operator, '')));

CREATE VIRTUAL TABLE calls_search USING fts5(
    digits,
    words,
    content = '',
    contentless_delete = 1,
    tokenize = 'trigram'
);

INSERT INTO calls_search (rowid, digits, words)
SELECT rowid, search_digits, search_words FROM calls;

CREATE TRIGGER calls_search_insert AFTER INSERT ON calls BEGIN
    INSERT INTO calls_search (rowid, digits, words)
    VALUES (new.rowid, new.search_digits, new.search_words);
END;

CREATE TRIGGER calls_search_update AFTER UPDATE OF search_digits, search_words ON calls BEGIN
    DELETE FROM calls_search WHERE rowid = old.rowid;
    INSERT INTO calls_search (rowid, digits, words)
    VALUES (new.rowid, new.search_digits, new.search_words);
END;

CREATE TRIGGER calls_search_delete AFTER DELETE ON calls BEGIN
    DELETE FROM calls_search WHERE rowid = old.rowid;
END;

CREATE INDEX calls_started_at ON calls (started_at DESC);
