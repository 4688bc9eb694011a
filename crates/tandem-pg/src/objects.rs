//! Reads the objects of a schema that `tandem diff` compares besides its tables
//! ([`tandem_core::objects`]), and the extensions a baseline must create first. Read-only
//! catalog queries; the schema's name is a bind parameter. Objects that belong to an
//! extension are left out (the extension stands for them), and so are the triggers
//! PostgreSQL clones onto partitions (the partitioned table's trigger stands for them).
//!
//! Run with `search_path` set to the schema (as [`crate::diff::read_consistent`] does), so that
//! PostgreSQL prints the schema's own objects unqualified.

use tandem_core::objects::{Extension, Object, ObjectKind, Objects};
use tokio_postgres::Client;

/// Not an extension member: `$class` is the catalog of the object `$oid`.
macro_rules! not_from_extension {
    ($class:literal, $oid:literal) => {
        concat!(
            "NOT EXISTS (SELECT 1 FROM pg_depend e WHERE e.classid = '",
            $class,
            "'::regclass AND e.objid = ",
            $oid,
            " AND e.deptype = 'e')"
        )
    };
}

const OBJECTS: &str = concat!(
    "WITH ns AS (SELECT oid FROM pg_namespace WHERE nspname = $1)
     SELECT 'type', t.typname, NULL::text,
            CASE t.typtype
              WHEN 'e' THEN 'ENUM (' || coalesce((SELECT string_agg(quote_literal(enumlabel), ', ' ORDER BY enumsortorder)
                                                  FROM pg_enum WHERE enumtypid = t.oid), '') || ')'
              WHEN 'd' THEN 'DOMAIN AS ' || format_type(t.typbasetype, t.typtypmod)
                   || CASE WHEN t.typnotnull THEN ' NOT NULL' ELSE '' END
                   || coalesce(' DEFAULT ' || t.typdefault, '')
                   || coalesce((SELECT string_agg(' CONSTRAINT ' || quote_ident(k.conname) || ' ' || pg_get_constraintdef(k.oid), '' ORDER BY k.conname)
                                FROM pg_constraint k WHERE k.contypid = t.oid), '')
              WHEN 'r' THEN 'RANGE (SUBTYPE = ' || (SELECT format_type(r.rngsubtype, NULL) FROM pg_range r WHERE r.rngtypid = t.oid) || ')'
              ELSE 'AS (' || coalesce((SELECT string_agg(quote_ident(a.attname) || ' ' || format_type(a.atttypid, a.atttypmod), ', ' ORDER BY a.attnum)
                                       FROM pg_attribute a WHERE a.attrelid = t.typrelid AND a.attnum > 0 AND NOT a.attisdropped), '') || ')'
            END || coalesce(' COMMENT ' || quote_literal(obj_description(t.oid, 'pg_type')), '')
       FROM pg_type t JOIN ns ON t.typnamespace = ns.oid
      WHERE (t.typtype IN ('e', 'd', 'r')
             OR (t.typtype = 'c' AND EXISTS (SELECT 1 FROM pg_class c WHERE c.oid = t.typrelid AND c.relkind = 'c')))
        AND ",
    not_from_extension!("pg_type", "t.oid"),
    "
     UNION ALL
     SELECT CASE p.prokind WHEN 'a' THEN 'aggregate' ELSE 'function' END,
            p.proname || '(' || pg_get_function_identity_arguments(p.oid) || ')', NULL,
            CASE WHEN p.prokind = 'a' THEN
              (SELECT 'SFUNC = ' || a.aggtransfn::regproc::text || ', STYPE = ' || format_type(a.aggtranstype, NULL)
                      || coalesce(', INITCOND = ' || quote_literal(a.agginitval), '')
                      || CASE WHEN a.aggfinalfn <> 0 THEN ', FINALFUNC = ' || a.aggfinalfn::regproc::text ELSE '' END
                      || CASE WHEN a.aggcombinefn <> 0 THEN ', COMBINEFUNC = ' || a.aggcombinefn::regproc::text ELSE '' END
                      || CASE WHEN a.aggsortop <> 0 THEN ', SORTOP = ' || a.aggsortop::regoperator::text ELSE '' END
                 FROM pg_aggregate a WHERE a.aggfnoid = p.oid)
            ELSE pg_get_functiondef(p.oid) END
            || coalesce(E'\\nCOMMENT ' || quote_literal(obj_description(p.oid, 'pg_proc')), '')
       FROM pg_proc p JOIN ns ON p.pronamespace = ns.oid
      WHERE ",
    not_from_extension!("pg_proc", "p.oid"),
    "
     UNION ALL
     SELECT 'sequence', c.relname, NULL,
            'AS ' || format_type(s.seqtypid, NULL) || ' START ' || s.seqstart || ' INCREMENT ' || s.seqincrement
            || ' MINVALUE ' || s.seqmin || ' MAXVALUE ' || s.seqmax || ' CACHE ' || s.seqcache
            || CASE WHEN s.seqcycle THEN ' CYCLE' ELSE '' END
            || coalesce((SELECT CASE d.deptype WHEN 'i' THEN ' IDENTITY OF ' ELSE ' OWNED BY ' END
                                || quote_ident(t.relname) || '.' || quote_ident(a.attname)
                           FROM pg_depend d
                           JOIN pg_class t ON t.oid = d.refobjid
                           JOIN pg_attribute a ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid
                          WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid
                            AND d.refclassid = 'pg_class'::regclass AND d.deptype IN ('a', 'i')
                            AND d.refobjsubid > 0
                          LIMIT 1), '')
       FROM pg_class c JOIN ns ON c.relnamespace = ns.oid JOIN pg_sequence s ON s.seqrelid = c.oid
      WHERE c.relkind = 'S' AND ",
    not_from_extension!("pg_class", "c.oid"),
    "
     UNION ALL
     SELECT 'partitioning', c.relname, NULL, 'PARTITION BY ' || pg_get_partkeydef(c.oid)
       FROM pg_class c JOIN ns ON c.relnamespace = ns.oid
      WHERE c.relkind = 'p'
     UNION ALL
     SELECT 'partition', c.relname, parent.relname, pg_get_expr(c.relpartbound, c.oid)
       FROM pg_class c JOIN ns ON c.relnamespace = ns.oid
       JOIN pg_inherits i ON i.inhrelid = c.oid
       JOIN pg_class parent ON parent.oid = i.inhparent
      WHERE c.relispartition AND c.relkind IN ('r', 'p', 'f')
     UNION ALL
     SELECT CASE c.relkind WHEN 'v' THEN 'view' ELSE 'materialized_view' END, c.relname, NULL,
            pg_get_viewdef(c.oid, true)
            || coalesce(E'\\nWITH (' || array_to_string(c.reloptions, ', ') || ')', '')
            || coalesce(E'\\nCOMMENT ' || quote_literal(obj_description(c.oid, 'pg_class')), '')
       FROM pg_class c JOIN ns ON c.relnamespace = ns.oid
      WHERE c.relkind IN ('v', 'm') AND ",
    not_from_extension!("pg_class", "c.oid"),
    "
     UNION ALL
     SELECT 'materialized_view_index', i.relname, c.relname, pg_get_indexdef(i.oid)
       FROM pg_index x
       JOIN pg_class i ON i.oid = x.indexrelid
       JOIN pg_class c ON c.oid = x.indrelid
       JOIN ns ON c.relnamespace = ns.oid
      WHERE c.relkind = 'm'
     UNION ALL
     SELECT 'trigger', tg.tgname, c.relname,
            pg_get_triggerdef(tg.oid, true)
            || CASE tg.tgenabled WHEN 'D' THEN ' (disabled)' WHEN 'R' THEN ' (enabled on replica only)'
                                 WHEN 'A' THEN ' (enabled always)' ELSE '' END
       FROM pg_trigger tg JOIN pg_class c ON c.oid = tg.tgrelid JOIN ns ON c.relnamespace = ns.oid
      WHERE NOT tg.tgisinternal AND tg.tgparentid = 0"
);

/// The extensions installed in `schema`, and those whose objects (types, functions, operator
/// classes, ...) an object of `schema` depends on; `plpgsql` is always there.
const EXTENSIONS: &str = "
    SELECT e.extname, n.nspname
      FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace
     WHERE e.extname <> 'plpgsql'
       AND (n.nspname = $1 OR EXISTS (
             SELECT 1
               FROM pg_depend m
               JOIN pg_depend d ON d.refclassid = m.classid AND d.refobjid = m.objid
              WHERE m.refclassid = 'pg_extension'::regclass AND m.refobjid = e.oid
                AND m.deptype = 'e' AND d.deptype IN ('n', 'a')
                AND NOT EXISTS (SELECT 1 FROM pg_depend x
                                 WHERE x.classid = d.classid AND x.objid = d.objid AND x.deptype = 'e')
                AND (pg_identify_object(d.classid, d.objid, d.objsubid)).schema = $1))
     ORDER BY e.extname";

/// The extensions a baseline of `schema` creates first.
pub async fn needed_extensions(
    client: &Client,
    schema: &str,
) -> Result<Vec<Extension>, tokio_postgres::Error> {
    Ok(client
        .query(EXTENSIONS, &[&schema])
        .await?
        .iter()
        .map(|r| Extension {
            name: r.get(0),
            schema: r.get(1),
        })
        .collect())
}

/// The objects of `schema` that `tandem diff` compares besides its tables.
pub async fn read_objects(client: &Client, schema: &str) -> Result<Objects, tokio_postgres::Error> {
    let mut objects: Vec<Object> = Vec::new();
    for row in client.query(OBJECTS, &[&schema]).await? {
        let kind = match row.get::<_, &str>(0) {
            "type" => ObjectKind::Type,
            "function" => ObjectKind::Function,
            "aggregate" => ObjectKind::Aggregate,
            "sequence" => ObjectKind::Sequence,
            "partitioning" => ObjectKind::Partitioning,
            "partition" => ObjectKind::Partition,
            "view" => ObjectKind::View,
            "materialized_view" => ObjectKind::MaterializedView,
            "materialized_view_index" => ObjectKind::MaterializedViewIndex,
            _ => ObjectKind::Trigger,
        };
        objects.push(Object {
            kind,
            name: row.get(1),
            on: row.get(2),
            definition: row.get::<_, Option<String>>(3).unwrap_or_default(),
        });
    }
    for e in needed_extensions(client, schema).await? {
        objects.push(Object {
            kind: ObjectKind::Extension,
            name: e.name,
            on: None,
            definition: format!("WITH SCHEMA {}", tandem_core::ident::quote_ident(&e.schema)),
        });
    }
    Ok(Objects {
        schema: schema.to_string(),
        objects,
    })
}
