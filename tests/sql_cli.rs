//! saha-sql: every Parquet file of a run is a table; embeddings print sensibly; --out writes files.

use saha_schemas::embeddings::Embeddings;
use saha_schemas::Provenance;
use saha_tests::{run, stderr, stdout, write_train};

fn run_dir() -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    let data = d.path().join("S.parquet");
    write_train(&data, &[["q1", "", "t1", ""], ["q2", "", "t1", ""]], Some(&["x", "y"]));
    let res = run(
        "saha-prompt",
        &[
            "--data",
            data.to_str().unwrap(),
            "--out-dir",
            d.path().join("run").to_str().unwrap(),
        ],
    );
    assert!(res.status.success(), "{}", stderr(&res));
    let e = Embeddings {
        item_ids: vec![0, 1, 2],
        dim: 6,
        values: (0..18).map(|v| v as f32 / 10.0).collect(),
        model: "tiny".into(),
        normalized: false,
    };
    e.write(&d.path().join("run/embeddings.parquet"), &Provenance::new("test", "0"))
        .unwrap();
    d
}

fn sql(dir: &std::path::Path, q: &str, extra: &[&str]) -> std::process::Output {
    let mut args = vec!["--run", dir.to_str().unwrap(), "-e", q];
    args.extend_from_slice(extra);
    run("saha-sql", &args)
}

#[test]
fn prints_aligned_tables_and_vectors() {
    let d = run_dir();
    let run_path = d.path().join("run");
    let res = sql(
        &run_path,
        "select side, count(*) as n from items group by side order by side",
        &[],
    );
    assert!(res.status.success(), "{}", stderr(&res));
    assert_eq!(
        stdout(&res),
        "| side   | n |\n|--------|---|\n| query  | 2 |\n| target | 1 |\n(2 rows)\n"
    );

    let res = sql(
        &run_path,
        "select item_id, embedding from embeddings where item_id = 1",
        &[],
    );
    assert!(res.status.success(), "{}", stderr(&res));
    assert!(
        stdout(&res).contains("[D=6] 0.6000, 0.7000, 0.8000, 0.9000, …"),
        "{}",
        stdout(&res)
    );

    let res = sql(
        &run_path,
        "select p.pair_id, i.text from pairs p join items i on i.item_id = p.target_id",
        &[],
    );
    assert!(stdout(&res).contains("(2 rows)"), "{}", stdout(&res));
}

#[test]
fn writes_csv_and_parquet_and_reports_errors() {
    let d = run_dir();
    let run_path = d.path().join("run");
    let csv = d.path().join("out.csv");
    let res = sql(
        &run_path,
        "select item_id, embedding from embeddings order by item_id limit 1",
        &["--out", csv.to_str().unwrap()],
    );
    assert!(res.status.success(), "{}", stderr(&res));
    let text = std::fs::read_to_string(&csv).unwrap();
    assert!(text.starts_with("item_id,embedding\n0,"), "{text}");

    let pq = d.path().join("out.parquet");
    let res = sql(&run_path, "select qry from pairs", &["--out", pq.to_str().unwrap()]);
    assert!(res.status.success(), "{}", stderr(&res));
    let table = saha_schemas::ParquetTable::open(&pq).unwrap();
    assert_eq!(table.num_rows, 2);

    let res = sql(&run_path, "select nope from pairs", &[]);
    assert!(!res.status.success());
    assert!(stderr(&res).contains("nope"), "{}", stderr(&res));
    let res = sql(&d.path().join("absent"), "select 1", &[]);
    assert!(stderr(&res).contains("does not exist"), "{}", stderr(&res));
}

#[test]
fn lists_tables_including_nested_folders() {
    let d = run_dir();
    let run_path = d.path().join("run");
    std::fs::create_dir_all(run_path.join("eval")).unwrap();
    std::fs::copy(run_path.join("pairs.parquet"), run_path.join("eval/pairs.parquet")).unwrap();
    let res = run("saha-sql", &["--run", run_path.to_str().unwrap(), "--tables"]);
    assert!(res.status.success(), "{}", stderr(&res));
    let out = stdout(&res);
    assert!(
        out.contains("pairs (2 rows") && out.contains("eval_pairs (2 rows") && out.contains("embeddings (3 rows"),
        "{out}"
    );
}

#[test]
fn csv_writes_vectors_and_lists_in_full_as_json() {
    let d = run_dir();
    let run_path = d.path().join("run");
    let csv = d.path().join("vec.csv");
    let res = sql(
        &run_path,
        "select item_id, embedding, make_array(item_id, 2) as l from embeddings where item_id = 1",
        &["--out", csv.to_str().unwrap()],
    );
    assert!(res.status.success(), "{}", stderr(&res));
    let text = std::fs::read_to_string(&csv).unwrap();
    assert_eq!(text, "item_id,embedding,l\n1,\"[0.6,0.7,0.8,0.9,1.0,1.1]\",\"[1,2]\"\n");
}

#[test]
fn only_queries_run() {
    let d = run_dir();
    let run_path = d.path().join("run");
    let copied = d.path().join("copied.csv");
    let copy = format!("copy (select * from pairs) to '{}'", copied.display());
    let res = sql(&run_path, &copy, &[]);
    assert!(!res.status.success());
    assert!(
        stderr(&res).contains("COPY ... TO writes files") && stderr(&res).contains("--out"),
        "{}",
        stderr(&res)
    );
    let res = sql(&run_path, &format!("explain analyze {copy}"), &[]);
    assert!(!res.status.success());
    assert!(stderr(&res).contains("COPY"), "{}", stderr(&res));
    assert!(!copied.exists(), "COPY wrote {}", copied.display());
    for statement in [
        "create table t as select 1",
        "create external table t2 stored as parquet location '/tmp'",
        "create view v as select 1",
        "drop table pairs",
        "insert into pairs select * from pairs",
        "set datafusion.execution.batch_size = 1",
    ] {
        let res = sql(&run_path, statement, &[]);
        assert!(!res.status.success(), "{statement} ran");
        assert!(
            stderr(&res).contains("runs queries only"),
            "{statement}: {}",
            stderr(&res)
        );
    }
    let res = sql(&run_path, "with t as (select 1 as x) select x from t", &[]);
    assert!(res.status.success(), "{}", stderr(&res));
}

#[test]
fn out_replaces_files_only_with_force_and_never_a_table() {
    let d = run_dir();
    let run_path = d.path().join("run");
    let csv = d.path().join("out.csv");
    let out = ["--out", csv.to_str().unwrap()];
    assert!(sql(&run_path, "select 1 as a", &out).status.success());
    let res = sql(&run_path, "select 2 as a", &out);
    assert!(!res.status.success());
    assert!(
        stderr(&res).contains("already exists") && stderr(&res).contains("--force"),
        "{}",
        stderr(&res)
    );
    assert_eq!(std::fs::read_to_string(&csv).unwrap(), "a\n1\n");
    let res = sql(&run_path, "select 2 as a", &[&out[..], &["--force"]].concat());
    assert!(res.status.success(), "{}", stderr(&res));
    assert_eq!(std::fs::read_to_string(&csv).unwrap(), "a\n2\n");

    let pairs = run_path.join("pairs.parquet");
    let before = std::fs::read(&pairs).unwrap();
    let spelled = run_path.join("eval/../pairs.parquet");
    std::fs::create_dir_all(run_path.join("eval")).unwrap();
    for target in [&pairs, &spelled] {
        let res = sql(
            &run_path,
            "select qry from pairs",
            &["--out", target.to_str().unwrap(), "--force"],
        );
        assert!(!res.status.success());
        assert!(
            stderr(&res).contains("table `pairs`") && stderr(&res).contains("never overwrites"),
            "{}",
            stderr(&res)
        );
    }
    assert_eq!(std::fs::read(&pairs).unwrap(), before);
}

#[test]
fn tables_lists_columns_with_types() {
    let d = run_dir();
    let run_path = d.path().join("run");
    let res = run("saha-sql", &["--run", run_path.to_str().unwrap(), "--tables"]);
    assert!(res.status.success(), "{}", stderr(&res));
    let out = stdout(&res);
    assert!(
        out.contains("embeddings (3 rows, ")
            && out.contains("\n  item_id UInt32\n  embedding FixedSizeList(6 x non-null Float32)\n"),
        "{out}"
    );
    assert!(out.contains("\n  qry Utf8\n"), "{out}");
}
