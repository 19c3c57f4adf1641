//! Prints the artefact tables of schemas/README.md from the catalogue.
fn main() {
    print!("{}", saha_schemas::artefacts::markdown(&saha_schemas::artefacts::all()));
}
