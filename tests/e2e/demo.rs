//! The README's demo command works: a throwaway PostgreSQL, every example migration with
//! both versions writing and reading, and nothing left behind.

#[test]
fn the_demo_runs_every_example_and_cleans_up() {
    let examples = concat!(env!("CARGO_MANIFEST_DIR"), "/../../migrations-examples");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_tandem"))
        .args(["demo", "--dir", examples])
        .output()
        .expect("run the demo");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "demo failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let files = std::fs::read_dir(examples)
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .path()
                .extension()
                .is_some_and(|x| x == "yaml")
        })
        .count();
    assert!(files >= 7);
    assert_eq!(
        stdout.matches(" complete ").count(),
        files,
        "every example ends complete:\n{stdout}"
    );
    assert!(
        stdout.contains("Old app") && stdout.contains("New app"),
        "both versions write:\n{stdout}"
    );
    assert!(stdout.contains("The temporary server is stopped and its files are removed."));
}
