//! Files that once made the Parquet readers panic (seeds 215, 299, 377 and 3045 of the first fuzz
//! loop, kept as files since the mutations changed): each is refused with an error naming it.

use std::path::Path;

use saha_schemas::embeddings::Embeddings;
use saha_schemas::records::read_records;
use saha_schemas::Pair;

#[test]
fn files_that_once_made_a_reader_panic_are_refused_naming_them() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corrupt");
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let result = match name.starts_with("pairs-") {
            true => read_records::<Pair>(&path).map(|_| ()),
            false => Embeddings::read(&path).map(|_| ()),
        };
        match result {
            Ok(()) => {}
            Err(e) => assert!(e.to_string().contains(&name), "{name}: {e}"),
        }
        seen += 1;
    }
    assert_eq!(seen, 8);
}
