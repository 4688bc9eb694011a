//! What depends on the columns and tables a contract drops, so that `complete` cannot fail
//! on it after the old version is gone.
//!
//! PostgreSQL refuses `DROP COLUMN` and `DROP TABLE` (without `CASCADE`) while another object
//! depends on what goes: a view, a materialized view, a generated column, a foreign key of
//! another table, a trigger `UPDATE OF` the column, a function with a SQL-standard body. The
//! same `pg_depend` walk PostgreSQL does is done here as one catalog query, at `plan`,
//! `validate` and `start` (before anything changes) and again at `complete` (before anything
//! changes, for objects created since start).
//!
//! Plain views are carried: the contract transaction saves their definitions, drops them,
//! swaps the columns, and recreates them over the new columns with their options, owner,
//! grants, comments, column defaults, rules and triggers. Everything else that depends on what
//! goes is a blocker, refused with a fix. So is a trigger function of the table whose body
//! names a column that disappears (`pg_depend` does not track function bodies): the table's
//! writes would fail right after complete.
//!
//! The queries here are text with bind parameters (the catalog check) or `DO` blocks with
//! escaped literals (the contract steps); this module runs nothing.

use serde::{Deserialize, Serialize};

use crate::ident::{dollar_quote, quote_literal};
use crate::plan::{Lock, Phase, Step, Tx};

/// A table, or some of its columns, that the contract drops.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContractDrop {
    /// The operation that causes it, as a JSON Pointer from the file's root.
    pub pointer: String,
    /// The table's physical name before the migration.
    pub table: String,
    /// The name the table has at complete when start set it aside: set when the contract
    /// drops the whole table (`drop_table`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aside: Option<String>,
    /// Physical columns dropped (none when the whole table is: `aside` is set then).
    pub columns: Vec<String>,
    /// Those of `columns` that a shadow replaces (under the same name, once complete has
    /// run): views over them are rebuilt. Views over the others cannot be.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub replaced: Vec<String>,
    /// Column names that no longer exist once complete has run (dropped, or renamed away);
    /// a trigger function of the table that names one would fail.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub vanishing: Vec<String>,
}

/// What happens to an object that depends on something the contract drops.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Fate {
    /// A view, rebuilt over the new columns inside the contract transaction; or a
    /// materialized view, whose replacement is built beside it before the contract and put in
    /// its place inside the contract transaction.
    Rebuilt,
    /// Would make the contract fail: refused before anything changes.
    Blocks,
}

/// One object that depends on what the contract drops.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dependent {
    /// As PostgreSQL describes it: `view public.customer_list`.
    pub object: String,
    /// What it depends on: `column address of table customer`.
    pub depends_on: String,
    pub fate: Fate,
    /// The operation whose contract drops what it depends on.
    pub pointer: String,
}

impl Dependent {
    /// How to unblock the migration, for a dependent that blocks it.
    pub fn fix(&self) -> String {
        let o = self.object.as_str();
        if self.depends_on.starts_with("owner ") {
            "tandem must recreate it, so its role must be a member of its owner: GRANT that role to tandem's, or run tandem as the owner".into()
        } else if o.starts_with("materialized view") {
            "tandem rebuilds a materialized view only over the changed table's own columns: drop this one in a `sql` migration before this one and recreate it with `onComplete: true` after, or leave the column alone".into()
        } else if self.depends_on.contains("materialized view") {
            "it is built on a materialized view that must be rebuilt: drop it before this migration and recreate it after (`sql` with `onComplete: true`)".into()
        } else if o.starts_with("default value for column") {
            "it is a generated column over the changed column, and PostgreSQL cannot point a generated column at another column without rewriting the table under an exclusive lock: drop it in an earlier migration (drop_column), or leave this column alone".into()
        } else if o.starts_with("constraint") {
            "a foreign key of another table references it: drop that constraint first (drop_constraint), then change the column".into()
        } else if o.starts_with("function") || o.starts_with("procedure") {
            "its body names the column, which is gone once complete has run (PostgreSQL does not track names in function bodies): change the function in a `sql` migration first (CREATE OR REPLACE FUNCTION) so it no longer names it, or keep the column".into()
        } else if o.starts_with("trigger") && self.depends_on.ends_with("body names") {
            "the trigger's function names the column: change the function in a `sql` migration (onComplete: true) so it no longer names it, or drop the trigger first".into()
        } else if o.starts_with("trigger") {
            "the trigger fires on UPDATE OF the column: drop it first and recreate it after complete".into()
        } else if o.starts_with("view") {
            "the view uses a column or table that goes away: define the view without it first (DROP VIEW and CREATE VIEW in a `sql` migration, since CREATE OR REPLACE VIEW cannot remove a column), or keep the column".into()
        } else {
            "drop or change it so it no longer depends on what this migration removes".into()
        }
    }
}

/// Lists every object that depends on what the contract drops, and whether it is rebuilt or
/// blocks. Parameters: `$1` the base schema; `$2`, `$3`, `$4`, `$8` parallel arrays of table,
/// aside name ('' for none), column ('' for the whole table) and whether a shadow replaces
/// it; `$5` the tandem version schemas, whose views tandem manages itself; `$6`, `$7`
/// parallel arrays of table and vanishing column name.
///
/// Columns: object, depends_on, rebuilt (bool), not_owned (bool: a view tandem's role cannot
/// recreate as its owner), table (the input row's table).
pub const DEPENDENTS_SQL: &str = r#"
WITH RECURSIVE
input AS (
    SELECT d.tbl, d.col, d.replaced,
           coalesce(to_regclass(quote_ident($1) || '.' || quote_ident(nullif(d.aside, ''))),
                    to_regclass(quote_ident($1) || '.' || quote_ident(d.tbl))) AS relid
      FROM unnest($2::text[], $3::text[], $4::text[], $8::bool[]) AS d(tbl, aside, col, replaced)
),
target AS (
    SELECT i.tbl, i.replaced, i.relid::oid AS relid, coalesce(a.attnum, 0)::int AS attnum
      FROM input i
      LEFT JOIN pg_attribute a
        ON a.attrelid = i.relid AND a.attname = i.col AND NOT a.attisdropped
     WHERE i.relid IS NOT NULL AND (i.col = '' OR a.attnum IS NOT NULL)
),
-- the same column of every partition and inheritance child
tree AS (
    SELECT tbl, replaced, relid, attnum FROM target
    UNION
    SELECT t.tbl, t.replaced, h.inhrelid,
           CASE WHEN t.attnum = 0 THEN 0 ELSE
             (SELECT c.attnum::int FROM pg_attribute c JOIN pg_attribute p
                 ON p.attrelid = t.relid AND p.attnum = t.attnum
               WHERE c.attrelid = h.inhrelid AND c.attname = p.attname) END
      FROM tree t JOIN pg_inherits h ON h.inhparent = t.relid
),
-- everything PostgreSQL drops along with them
gone (tbl, replaced, classid, objid, objsubid) AS (
    SELECT tbl, replaced, 'pg_class'::regclass::oid, relid, attnum FROM tree
    UNION
    SELECT g.tbl, false, d.classid, d.objid, d.objsubid
      FROM gone g JOIN pg_depend d
        ON d.refclassid = g.classid AND d.refobjid = g.objid
       AND (g.objsubid = 0 OR d.refobjsubid = g.objsubid)
     WHERE d.deptype IN ('a', 'i')
       -- a sequence a replaced column owns (serial) passes to its shadow, which uses it
       AND NOT (g.replaced AND d.classid = 'pg_class'::regclass AND d.deptype = 'a'
                AND (SELECT c.relkind FROM pg_class c WHERE c.oid = d.objid) = 'S')
),
-- what depends on them without going along: views and materialized views are carried; what
-- is built on them must be too
hit (tbl, classid, objid, objsubid, refclassid, refobjid, refobjsubid) AS (
    SELECT g.tbl, d.classid, d.objid, d.objsubid, d.refclassid, d.refobjid, d.refobjsubid
      FROM gone g JOIN pg_depend d
        ON d.refclassid = g.classid AND d.refobjid = g.objid
       AND (g.objsubid = 0 OR d.refobjsubid = g.objsubid)
     WHERE d.deptype = 'n'
    UNION
    SELECT h.tbl, d.classid, d.objid, d.objsubid, d.refclassid, d.refobjid, d.refobjsubid
      FROM hit h
      JOIN pg_rewrite r ON h.classid = 'pg_rewrite'::regclass AND r.oid = h.objid
      JOIN pg_class v ON v.oid = r.ev_class AND v.relkind IN ('v', 'm')
      JOIN pg_depend d ON d.refclassid = 'pg_class'::regclass AND d.refobjid = v.oid
       AND d.deptype = 'n' AND NOT (d.classid = 'pg_rewrite'::regclass AND d.objid = r.oid)
),
found AS (
    SELECT h.tbl,
           CASE WHEN h.classid = 'pg_rewrite'::regclass
                THEN pg_describe_object('pg_class'::regclass, r.ev_class, 0)
                ELSE pg_describe_object(h.classid, h.objid, 0) END AS object,
           pg_describe_object(h.refclassid, h.refobjid, h.refobjsubid) AS depends_on,
           CASE v.relkind
             -- a view over a replaced column, or over a view that is rebuilt
             WHEN 'v' THEN
               EXISTS (SELECT 1 FROM tree t WHERE t.replaced AND t.relid = h.refobjid
                          AND t.attnum = h.refobjsubid)
               OR (SELECT o.relkind FROM pg_class o WHERE o.oid = h.refobjid) = 'v'
             -- a materialized view over a replaced column of the table itself (its
             -- replacement is built beside it before the contract)
             WHEN 'm' THEN
               EXISTS (SELECT 1 FROM target t WHERE t.replaced AND t.relid = h.refobjid
                          AND t.attnum = h.refobjsubid)
             -- a trigger of the table itself (`UPDATE OF`, or its WHEN) over a replaced
             -- column: made again, by its own definition, once the column is swapped
             ELSE h.classid = 'pg_trigger'::regclass
               AND EXISTS (SELECT 1 FROM target t WHERE t.replaced AND t.relid = h.refobjid
                              AND t.attnum = h.refobjsubid)
               AND EXISTS (SELECT 1 FROM pg_trigger tg WHERE tg.oid = h.objid
                              AND tg.tgparentid = 0 AND NOT tg.tgisinternal)
             END
             AS rebuilt,
           coalesce(pg_has_role(v.relowner, 'MEMBER'), true) AS owned,
           (SELECT n.nspname FROM pg_class o JOIN pg_namespace n ON n.oid = o.relnamespace
             WHERE o.oid = CASE h.classid
                 WHEN 'pg_rewrite'::regclass THEN r.ev_class
                 WHEN 'pg_attrdef'::regclass
                   THEN (SELECT ad.adrelid FROM pg_attrdef ad WHERE ad.oid = h.objid)
                 WHEN 'pg_trigger'::regclass
                   THEN (SELECT tg.tgrelid FROM pg_trigger tg WHERE tg.oid = h.objid)
                 WHEN 'pg_constraint'::regclass
                   THEN (SELECT co.conrelid FROM pg_constraint co WHERE co.oid = h.objid)
                 WHEN 'pg_class'::regclass THEN h.objid END) AS owner_schema
      FROM hit h
      LEFT JOIN pg_rewrite r ON h.classid = 'pg_rewrite'::regclass AND r.oid = h.objid
      LEFT JOIN pg_class v ON v.oid = r.ev_class
     WHERE NOT EXISTS (SELECT 1 FROM gone g WHERE g.classid = h.classid AND g.objid = h.objid)
       -- a view's rule depends on its own view's columns
       AND NOT (h.classid = 'pg_rewrite'::regclass AND h.refobjid = r.ev_class)
),
-- triggers of the tables whose function names a column that disappears
vanishing AS (
    SELECT v.tbl, v.col, c.oid AS relid,
           '(^|[^[:alnum:]_$])' || regexp_replace(v.col, '([^[:alnum:]_])', '\\\1', 'g')
             || '($|[^[:alnum:]_$])' AS col_word,
           '(^|[^[:alnum:]_$])' || regexp_replace(v.tbl, '([^[:alnum:]_])', '\\\1', 'g')
             || '($|[^[:alnum:]_$])' AS tbl_word
      FROM unnest($6::text[], $7::text[]) AS v(tbl, col)
      JOIN pg_class c ON c.oid = to_regclass(quote_ident($1) || '.' || quote_ident(v.tbl))
),
named AS (
    SELECT v.tbl,
           pg_describe_object('pg_trigger'::regclass, g.oid, 0) AS object,
           format('column %s of table %s, which its function''s body names', v.col, v.tbl) AS depends_on,
           false AS rebuilt,
           true AS owned,
           NULL::name AS owner_schema
      FROM vanishing v
      JOIN pg_trigger g ON g.tgrelid = v.relid AND NOT g.tgisinternal
      JOIN pg_proc p ON p.oid = g.tgfoid
     WHERE g.tgname NOT LIKE '\_tandem%'
       AND p.prosrc ~* v.col_word
    UNION ALL
    -- any other function of the schema (not an extension's) whose body names both the table
    -- and the column: it would fail once complete has run
    SELECT v.tbl,
           pg_describe_object('pg_proc'::regclass, p.oid, 0),
           format('column %s of table %s, which its body names', v.col, v.tbl),
           false, true, NULL::name
      FROM vanishing v
      JOIN pg_proc p ON p.pronamespace = (SELECT oid FROM pg_namespace WHERE nspname = $1)
     WHERE p.prokind IN ('f', 'p') AND p.proname NOT LIKE '\_tandem%'
       AND NOT EXISTS (SELECT 1 FROM pg_depend e WHERE e.classid = 'pg_proc'::regclass
                          AND e.objid = p.oid AND e.deptype = 'e')
       AND NOT EXISTS (SELECT 1 FROM pg_trigger g WHERE g.tgfoid = p.oid AND g.tgrelid = v.relid)
       AND p.prosrc ~* v.col_word AND p.prosrc ~* v.tbl_word
)
SELECT DISTINCT object, depends_on, rebuilt AND owned, NOT owned, tbl
  FROM (SELECT * FROM found UNION ALL SELECT * FROM named) f
 -- tandem's version schemas are its own to drop and rebuild
 WHERE owner_schema IS NULL OR NOT owner_schema = ANY ($5::text[])
 ORDER BY tbl, object, depends_on
"#;

/// The bind parameters of [`DEPENDENTS_SQL`] after the base schema: tables, aside names,
/// columns, then (after the version schemas) vanishing tables and columns.
pub fn dependents_params(drops: &[ContractDrop]) -> ([Vec<String>; 5], Vec<bool>) {
    let (mut tables, mut asides, mut columns) = (Vec::new(), Vec::new(), Vec::new());
    let mut replaced = Vec::new();
    let (mut v_tables, mut v_columns) = (Vec::new(), Vec::new());
    for d in drops {
        let aside = d.aside.clone().unwrap_or_default();
        if d.aside.is_some() {
            tables.push(d.table.clone());
            asides.push(aside.clone());
            columns.push(String::new());
            replaced.push(false);
        }
        for c in &d.columns {
            tables.push(d.table.clone());
            asides.push(aside.clone());
            columns.push(c.clone());
            replaced.push(d.replaced.contains(c));
        }
        for c in &d.vanishing {
            v_tables.push(d.table.clone());
            v_columns.push(c.clone());
        }
    }
    ([tables, asides, columns, v_tables, v_columns], replaced)
}

/// The pointer of the operation behind a found row (`table` is the input row's table).
pub fn pointer_for(drops: &[ContractDrop], table: &str) -> String {
    drops
        .iter()
        .find(|d| d.table == table)
        .map(|d| d.pointer.clone())
        .unwrap_or_default()
}

/// The temporary table the contract keeps the carried views in between its two steps.
const SAVED: &str = "pg_temp._tandem_carried_views";

/// Inside a table's contract transaction, before its columns are dropped: saves every view
/// (outside tandem's version schemas) that depends on `columns` of `table` or its partitions,
/// with the views over those, and drops them, the outermost first.
pub fn save_and_drop_views_step(
    base: &str,
    table: &str,
    pairs: &[(String, String)],
    version_schemas: &[String],
    group: &Tx,
) -> Step {
    let columns: Vec<String> = pairs.iter().map(|(o, _)| o.clone()).collect();
    let shadows: Vec<String> = pairs.iter().map(|(_, s)| s.clone()).collect();
    let columns = &columns[..];
    let array = text_array;
    let body = format!(
        r#"
DECLARE saved record; owned record;
BEGIN
  -- column privileges go on with the shadow (a view is security_invoker: the table's
  -- column grants are what a role's reads and writes are checked against)
  FOR owned IN SELECT s.shadow, g.privilege_type, g.grantee, g.is_grantable
                 FROM pg_attribute a
                 JOIN unnest({columns}, {shadows}) AS s(original, shadow) ON s.original = a.attname
                 CROSS JOIN LATERAL aclexplode(a.attacl) g
                WHERE a.attrelid = to_regclass(quote_ident({base}) || '.' || quote_ident({table}))
                  AND a.attacl IS NOT NULL LOOP
    EXECUTE format('GRANT %s (%I) ON %I.%I TO %s%s', owned.privilege_type, owned.shadow,
        {base}, {table},
        CASE WHEN owned.grantee = 0 THEN 'PUBLIC' ELSE quote_ident(pg_get_userbyid(owned.grantee)) END,
        CASE WHEN owned.is_grantable THEN ' WITH GRANT OPTION' ELSE '' END);
  END LOOP;
  -- a sequence a replaced column owns (serial) goes on with its shadow, whose default uses it
  FOR owned IN SELECT d.objid::regclass AS seq, s.shadow
                 FROM pg_depend d
                 JOIN pg_attribute a ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid
                 JOIN unnest({columns}, {shadows}) AS s(original, shadow) ON s.original = a.attname
                WHERE d.classid = 'pg_class'::regclass AND d.refclassid = 'pg_class'::regclass
                  AND d.deptype = 'a'
                  AND d.refobjid = to_regclass(quote_ident({base}) || '.' || quote_ident({table}))
                  AND (SELECT c.relkind FROM pg_class c WHERE c.oid = d.objid) = 'S' LOOP
    EXECUTE format('ALTER SEQUENCE %s OWNED BY %I.%I.%I', owned.seq, {base}, {table}, owned.shadow);
  END LOOP;
  -- Nothing (a view, a materialized view, a trigger) depends on the replaced columns of the
  -- table or its partitions: no temporary table, nothing more to do under the lock.
  IF NOT EXISTS (
      WITH RECURSIVE rels(oid) AS (
          SELECT to_regclass(quote_ident({base}) || '.' || quote_ident({table}))::oid
          UNION
          SELECT h.inhrelid FROM rels r JOIN pg_inherits h ON h.inhparent = r.oid)
      SELECT 1 FROM pg_depend d
        JOIN rels r ON d.refclassid = 'pg_class'::regclass AND d.refobjid = r.oid
        JOIN pg_attribute a ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid
       WHERE d.classid IN ('pg_rewrite'::regclass, 'pg_trigger'::regclass)
         AND d.deptype = 'n' AND a.attname = ANY ({columns})) THEN
    RETURN;
  END IF;
  CREATE TEMP TABLE IF NOT EXISTS _tandem_carried_views (
      depth int, nsp name, name name, def text, options text[], owner name, acl aclitem[],
      comment text, column_comments jsonb, column_defaults jsonb, extras text[],
      kind "char" DEFAULT 'v', source oid, indexes jsonb, on_table name
  ) ON COMMIT DROP;
  TRUNCATE {SAVED};
  INSERT INTO {SAVED} (depth, nsp, name, def, options, owner, acl, comment, column_comments,
                       column_defaults, extras)
  WITH RECURSIVE
  tree AS (
      SELECT c.oid AS relid, a.attnum
        FROM pg_class c JOIN pg_attribute a ON a.attrelid = c.oid
       WHERE c.oid = to_regclass(quote_ident({base}) || '.' || quote_ident({table}))
         AND a.attname = ANY ({columns}) AND NOT a.attisdropped
      UNION
      SELECT h.inhrelid, c.attnum
        FROM tree t JOIN pg_inherits h ON h.inhparent = t.relid
        JOIN pg_attribute p ON p.attrelid = t.relid AND p.attnum = t.attnum
        JOIN pg_attribute c ON c.attrelid = h.inhrelid AND c.attname = p.attname
  ),
  views (oid, depth) AS (
      SELECT DISTINCT r.ev_class, 1
        FROM tree t JOIN pg_depend d
          ON d.refclassid = 'pg_class'::regclass AND d.refobjid = t.relid
         AND d.refobjsubid = t.attnum AND d.classid = 'pg_rewrite'::regclass
        JOIN pg_rewrite r ON r.oid = d.objid
      UNION
      SELECT r.ev_class, v.depth + 1
        FROM views v JOIN pg_depend d
          ON d.refclassid = 'pg_class'::regclass AND d.refobjid = v.oid
         AND d.classid = 'pg_rewrite'::regclass
        JOIN pg_rewrite r ON r.oid = d.objid AND r.ev_class <> v.oid
  )
  SELECT max(v.depth), n.nspname, c.relname, pg_get_viewdef(c.oid), c.reloptions,
         pg_get_userbyid(c.relowner), c.relacl, obj_description(c.oid, 'pg_class'),
         (SELECT jsonb_object_agg(a.attname, col_description(c.oid, a.attnum))
            FROM pg_attribute a
           WHERE a.attrelid = c.oid AND a.attnum > 0
             AND col_description(c.oid, a.attnum) IS NOT NULL),
         (SELECT jsonb_object_agg(a.attname, pg_get_expr(ad.adbin, ad.adrelid))
            FROM pg_attrdef ad JOIN pg_attribute a
              ON a.attrelid = ad.adrelid AND a.attnum = ad.adnum
           WHERE ad.adrelid = c.oid),
         ARRAY(SELECT pg_get_triggerdef(g.oid) FROM pg_trigger g
                WHERE g.tgrelid = c.oid AND NOT g.tgisinternal
               UNION ALL
               SELECT pg_get_ruledef(ru.oid) FROM pg_rewrite ru
                WHERE ru.ev_class = c.oid AND ru.rulename <> '_RETURN')
    FROM views v
    JOIN pg_class c ON c.oid = v.oid AND c.relkind = 'v'
    JOIN pg_namespace n ON n.oid = c.relnamespace
   WHERE NOT n.nspname = ANY ({version_schemas})
   GROUP BY c.oid, n.nspname, c.relname;
  -- the table's own triggers over the replaced columns (UPDATE OF, or WHEN)
  INSERT INTO {SAVED} (depth, nsp, name, def, comment, extras, kind, on_table)
  SELECT DISTINCT 0, n.nspname, g.tgname, pg_get_triggerdef(g.oid),
         obj_description(g.oid, 'pg_trigger'),
         CASE g.tgenabled
           WHEN 'D' THEN ARRAY[format('ALTER TABLE %I.%I DISABLE TRIGGER %I', n.nspname, c.relname, g.tgname)]
           WHEN 'A' THEN ARRAY[format('ALTER TABLE %I.%I ENABLE ALWAYS TRIGGER %I', n.nspname, c.relname, g.tgname)]
           WHEN 'R' THEN ARRAY[format('ALTER TABLE %I.%I ENABLE REPLICA TRIGGER %I', n.nspname, c.relname, g.tgname)]
         END,
         't', c.relname
    FROM pg_trigger g
    JOIN pg_class c ON c.oid = g.tgrelid
    JOIN pg_namespace n ON n.oid = c.relnamespace
    JOIN pg_depend d ON d.classid = 'pg_trigger'::regclass AND d.objid = g.oid
                    AND d.refclassid = 'pg_class'::regclass AND d.refobjid = c.oid
    JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = d.refobjsubid
   WHERE c.oid = to_regclass(quote_ident({base}) || '.' || quote_ident({table}))
     AND a.attname = ANY ({columns}) AND NOT g.tgisinternal AND g.tgparentid = 0;
  -- the materialized views whose replacement was built beside them
  INSERT INTO {SAVED} (depth, nsp, name, owner, acl, comment, column_comments, kind, source, indexes)
  SELECT 0, n.nspname, c.relname, pg_get_userbyid(c.relowner), c.relacl,
         obj_description(c.oid, 'pg_class'),
         (SELECT jsonb_object_agg(a.attname, col_description(c.oid, a.attnum))
            FROM pg_attribute a
           WHERE a.attrelid = c.oid AND a.attnum > 0
             AND col_description(c.oid, a.attnum) IS NOT NULL),
         'm', c.oid,
         (SELECT jsonb_object_agg('_tandem_mvi_' || i.indexrelid, ic.relname)
            FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid
           WHERE i.indrelid = c.oid)
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
   WHERE c.oid IN ({matviews})
     AND to_regclass(format('%I.%I', n.nspname, '{REPLACEMENT_PREFIX}' || c.oid)) IS NOT NULL;
  FOR saved IN SELECT * FROM {SAVED} ORDER BY depth DESC LOOP
    IF saved.kind = 't' THEN
      EXECUTE format('DROP TRIGGER %I ON %I.%I', saved.name, saved.nsp, saved.on_table);
    ELSIF saved.kind = 'm' THEN
      EXECUTE format('DROP MATERIALIZED VIEW %I.%I', saved.nsp, saved.name);
    ELSE
      EXECUTE format('DROP VIEW %I.%I', saved.nsp, saved.name);
    END IF;
  END LOOP;
END
"#,
        base = quote_literal(base),
        table = quote_literal(table),
        columns = array(columns),
        shadows = array(&shadows),
        version_schemas = array(version_schemas),
        matviews = matviews_over(base, table, columns, version_schemas),
    );
    Step::sql(
        Phase::Complete,
        format!(
            "set aside the views over the columns of {} that are replaced (rebuilt below), and hand the sequences those columns own to their replacements",
            crate::ident::quote_ident(table)
        ),
        format!("DO {}", dollar_quote(&body)),
    )
    .lock(Lock::AccessExclusive)
    .tx(group.clone())
}

/// The name of the replacement built for the materialized view with this oid.
const REPLACEMENT_PREFIX: &str = "_tandem_mv_";

fn text_array(items: &[String]) -> String {
    format!(
        "ARRAY[{}]::text[]",
        items
            .iter()
            .map(|s| quote_literal(s))
            .collect::<Vec<_>>()
            .join(", ")
    )
}

/// The materialized views (outside tandem's version schemas) over the replaced columns of
/// `table`, as a SQL query yielding `oid`. `$columns` are the original physical names.
fn matviews_over(
    base: &str,
    table: &str,
    columns: &[String],
    version_schemas: &[String],
) -> String {
    format!(
        "SELECT DISTINCT m.oid
           FROM pg_attribute a
           JOIN pg_depend d ON d.refclassid = 'pg_class'::regclass AND d.refobjid = a.attrelid
                            AND d.refobjsubid = a.attnum AND d.classid = 'pg_rewrite'::regclass
           JOIN pg_rewrite r ON r.oid = d.objid
           JOIN pg_class m ON m.oid = r.ev_class AND m.relkind = 'm'
           JOIN pg_namespace mn ON mn.oid = m.relnamespace
          WHERE a.attrelid = to_regclass(quote_ident({base}) || '.' || quote_ident({table}))
            AND a.attname = ANY ({columns}) AND NOT a.attisdropped
            AND NOT mn.nspname = ANY ({version_schemas})",
        base = quote_literal(base),
        table = quote_literal(table),
        columns = text_array(columns),
        version_schemas = text_array(version_schemas),
    )
}

/// Before the contract, for each materialized view over a column of `table` that a shadow
/// replaces (`pairs`: original, shadow): a replacement beside it, `_tandem_mv_<oid>`, defined
/// over the shadow columns and not yet filled. Its definition is the view's own, bound to the
/// shadows by PostgreSQL: inside a subtransaction that is then undone, each shadow briefly
/// takes its column's name (an ACCESS EXCLUSIVE lock for a few catalog changes), a temporary
/// view is made from the definition, and its text is read back once the names are restored.
/// A replacement that already exists (a resumed complete) is kept.
pub fn prepare_matview_replacements_step(
    base: &str,
    table: &str,
    pairs: &[(String, String)],
    version_schemas: &[String],
) -> Step {
    let originals: Vec<String> = pairs.iter().map(|(o, _)| o.clone()).collect();
    let shadows: Vec<String> = pairs.iter().map(|(_, s)| s.clone()).collect();
    let body = format!(
        r#"
DECLARE
  rel regclass := to_regclass(quote_ident({base}) || '.' || quote_ident({table}));
  originals text[] := {originals};
  shadows text[] := {shadows};
  mv record;
  definition text;
  rebound text;
  i int;
BEGIN
  FOR mv IN SELECT c.oid, n.nspname AS nsp, c.relname AS name, c.reloptions
              FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
             WHERE c.oid IN ({matviews}) LOOP
    CONTINUE WHEN to_regclass(format('%I.%I', mv.nsp, '{REPLACEMENT_PREFIX}' || mv.oid)) IS NOT NULL;
    definition := rtrim(pg_get_viewdef(mv.oid), ';');
    BEGIN
      FOR i IN 1 .. array_length(originals, 1) LOOP
        EXECUTE format('ALTER TABLE %s RENAME COLUMN %I TO %I', rel, originals[i], '_tandem_probe_' || i);
        EXECUTE format('ALTER TABLE %s RENAME COLUMN %I TO %I', rel, shadows[i], originals[i]);
      END LOOP;
      EXECUTE format('CREATE TEMPORARY VIEW %I AS %s', '_tandem_probe_' || mv.oid, definition);
      FOR i IN 1 .. array_length(originals, 1) LOOP
        EXECUTE format('ALTER TABLE %s RENAME COLUMN %I TO %I', rel, originals[i], shadows[i]);
        EXECUTE format('ALTER TABLE %s RENAME COLUMN %I TO %I', rel, '_tandem_probe_' || i, originals[i]);
      END LOOP;
      rebound := rtrim(pg_get_viewdef(format('pg_temp.%I', '_tandem_probe_' || mv.oid)::regclass), ';');
      RAISE EXCEPTION 'tandem: undo the probe';
    EXCEPTION WHEN raise_exception THEN
      IF SQLERRM <> 'tandem: undo the probe' THEN RAISE; END IF;
    END;
    EXECUTE format('CREATE MATERIALIZED VIEW %I.%I%s AS %s WITH NO DATA', mv.nsp,
        '{REPLACEMENT_PREFIX}' || mv.oid,
        CASE WHEN mv.reloptions IS NULL THEN ''
             ELSE ' WITH (' || array_to_string(mv.reloptions, ', ') || ')' END,
        rebound);
  END LOOP;
END
"#,
        base = quote_literal(base),
        table = quote_literal(table),
        originals = text_array(&originals),
        shadows = text_array(&shadows),
        matviews = matviews_over(base, table, &originals, version_schemas),
    );
    Step::sql(
        Phase::Complete,
        format!(
            "define replacements for the materialized views over the columns of {} that are swapped",
            crate::ident::quote_ident(table)
        ),
        format!("DO {}", dollar_quote(&body)),
    )
    .lock(Lock::AccessExclusive)
}

/// Fills each replacement from the shadow columns and gives it the indexes of the view it
/// replaces, under temporary names. Runs beside the application: it reads the table, locking
/// only the replacement.
pub fn fill_matview_replacements_step(
    base: &str,
    table: &str,
    originals: &[String],
    version_schemas: &[String],
) -> Step {
    let body = format!(
        r#"
DECLARE mv record; ix record; replacement regclass;
BEGIN
  FOR mv IN SELECT c.oid, n.nspname AS nsp, c.relispopulated
              FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
             WHERE c.oid IN ({matviews}) LOOP
    replacement := to_regclass(format('%I.%I', mv.nsp, '{REPLACEMENT_PREFIX}' || mv.oid));
    CONTINUE WHEN replacement IS NULL;
    IF mv.relispopulated AND NOT (SELECT relispopulated FROM pg_class WHERE oid = replacement) THEN
      EXECUTE format('REFRESH MATERIALIZED VIEW %s', replacement);
    END IF;
    FOR ix IN SELECT i.indexrelid, pg_get_indexdef(i.indexrelid) AS def, i.indisunique
                FROM pg_index i WHERE i.indrelid = mv.oid LOOP
      CONTINUE WHEN to_regclass(format('%I.%I', mv.nsp, '_tandem_mvi_' || ix.indexrelid)) IS NOT NULL;
      EXECUTE format('CREATE %sINDEX %I ON %s USING %s',
          CASE WHEN ix.indisunique THEN 'UNIQUE ' ELSE '' END,
          '_tandem_mvi_' || ix.indexrelid, replacement,
          substr(ix.def, strpos(ix.def, ' USING ') + 7));
    END LOOP;
  END LOOP;
END
"#,
        matviews = matviews_over(base, table, originals, version_schemas),
    );
    Step::sql(
        Phase::Complete,
        format!(
            "fill the replacement materialized views over {} (beside the old ones)",
            crate::ident::quote_ident(table)
        ),
        format!("DO {}", dollar_quote(&body)),
    )
    .lock(Lock::AccessShare)
}

/// Inside the same transaction, once the columns have their final names: recreates the
/// views [`save_and_drop_views_step`] set aside, innermost first, with their options, owner,
/// grants, comments, column defaults, triggers and rules.
pub fn recreate_views_step(table: &str, group: &Tx) -> Step {
    let body = format!(
        r#"
DECLARE saved record; entry record; acl record; statement text;
BEGIN
  IF to_regclass('{SAVED}') IS NULL THEN RETURN; END IF;
  FOR saved IN SELECT * FROM {SAVED} WHERE kind = 't' LOOP
    EXECUTE saved.def;
    IF saved.comment IS NOT NULL THEN
      EXECUTE format('COMMENT ON TRIGGER %I ON %I.%I IS %L', saved.name, saved.nsp,
          saved.on_table, saved.comment);
    END IF;
    FOREACH statement IN ARRAY coalesce(saved.extras, '{{}}') LOOP
      EXECUTE statement;
    END LOOP;
  END LOOP;
  FOR saved IN SELECT * FROM {SAVED} WHERE kind <> 't' ORDER BY depth LOOP
    IF saved.kind = 'm' THEN
      EXECUTE format('ALTER MATERIALIZED VIEW %I.%I RENAME TO %I', saved.nsp,
          '{REPLACEMENT_PREFIX}' || saved.source, saved.name);
      FOR entry IN SELECT * FROM jsonb_each_text(coalesce(saved.indexes, '{{}}')) LOOP
        EXECUTE format('ALTER INDEX %I.%I RENAME TO %I', saved.nsp, entry.key, entry.value);
      END LOOP;
      EXECUTE format('ALTER MATERIALIZED VIEW %I.%I OWNER TO %I', saved.nsp, saved.name, saved.owner);
    ELSE
      EXECUTE format('CREATE VIEW %I.%I%s AS %s', saved.nsp, saved.name,
          CASE WHEN saved.options IS NULL THEN ''
               ELSE ' WITH (' || array_to_string(saved.options, ', ') || ')' END,
          rtrim(saved.def, ';'));
      EXECUTE format('ALTER VIEW %I.%I OWNER TO %I', saved.nsp, saved.name, saved.owner);
    END IF;
    FOR acl IN SELECT * FROM aclexplode(saved.acl) LOOP
      EXECUTE format('GRANT %s ON %I.%I TO %s%s', acl.privilege_type, saved.nsp, saved.name,
          CASE WHEN acl.grantee = 0 THEN 'PUBLIC' ELSE quote_ident(pg_get_userbyid(acl.grantee)) END,
          CASE WHEN acl.is_grantable THEN ' WITH GRANT OPTION' ELSE '' END);
    END LOOP;
    IF saved.comment IS NOT NULL THEN
      EXECUTE format('COMMENT ON %s %I.%I IS %L',
          CASE WHEN saved.kind = 'm' THEN 'MATERIALIZED VIEW' ELSE 'VIEW' END,
          saved.nsp, saved.name, saved.comment);
    END IF;
    FOR entry IN SELECT * FROM jsonb_each_text(coalesce(saved.column_comments, '{{}}')) LOOP
      EXECUTE format('COMMENT ON COLUMN %I.%I.%I IS %L', saved.nsp, saved.name, entry.key, entry.value);
    END LOOP;
    FOR entry IN SELECT * FROM jsonb_each_text(coalesce(saved.column_defaults, '{{}}')) LOOP
      EXECUTE format('ALTER VIEW %I.%I ALTER COLUMN %I SET DEFAULT %s', saved.nsp, saved.name, entry.key, entry.value);
    END LOOP;
    FOREACH statement IN ARRAY coalesce(saved.extras, '{{}}') LOOP
      EXECUTE statement;
    END LOOP;
  END LOOP;
  -- a drop, not a truncate: the table's life is this step pair's, and DDL logs see it end
  DROP TABLE {SAVED};
END
"#
    );
    Step::sql(
        Phase::Complete,
        format!(
            "rebuild the views over the columns of {} that were swapped",
            crate::ident::quote_ident(table)
        ),
        format!("DO {}", dollar_quote(&body)),
    )
    .lock(Lock::AccessExclusive)
    .tx(group.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn params_list_every_column_and_whole_tables_once() {
        let drops = vec![
            ContractDrop {
                pointer: "/operations/0/alter_column".into(),
                table: "t".into(),
                aside: None,
                columns: vec!["a".into(), "b".into()],
                replaced: vec!["a".into()],
                vanishing: vec!["b".into()],
            },
            ContractDrop {
                pointer: "/operations/1/drop_table".into(),
                table: "u".into(),
                aside: Some("_tandem_del_u".into()),
                columns: vec![],
                replaced: vec![],
                vanishing: vec![],
            },
        ];
        let ([tables, asides, columns, vt, vc], replaced) = dependents_params(&drops);
        assert_eq!(replaced, [true, false, false]);
        assert_eq!(tables, ["t", "t", "u"]);
        assert_eq!(asides, ["", "", "_tandem_del_u"]);
        assert_eq!(columns, ["a", "b", ""]);
        assert_eq!((vt, vc), (vec!["t".to_string()], vec!["b".to_string()]));
        assert_eq!(pointer_for(&drops, "u"), "/operations/1/drop_table");
    }

    #[test]
    fn names_reach_the_do_block_as_escaped_literals() {
        let step = save_and_drop_views_step(
            "public",
            "it's",
            &[("$tandem$ x".to_string(), "_tandem_new_x".to_string())],
            &["public_01".to_string()],
            &Tx::Group("g".into()),
        );
        let sql = step.sql_text().unwrap();
        assert!(sql.contains("quote_ident('it''s')"));
        assert!(sql.starts_with("DO $tandem1$"), "{sql}");
        assert!(sql.contains("ARRAY['public_01']::text[]"));
    }
}
