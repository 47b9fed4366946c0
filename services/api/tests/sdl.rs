//! The committed SDL (`schemas/graphql/argus.graphql`) is what the code serves; regenerate it with
//! `UPDATE_SCHEMAS=1 cargo test -p argus-api --test sdl` after an intended change.

#[test]
fn committed_sdl_matches_the_code() {
    let package = std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
    let path = std::path::Path::new(&package).join("../../schemas/graphql/argus.graphql");
    let generated = argus_api::schema::sdl();
    if std::env::var_os("UPDATE_SCHEMAS").is_some() {
        std::fs::create_dir_all(path.parent().expect("parent")).expect("schemas/graphql");
        std::fs::write(&path, &generated).expect("write SDL");
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == generated,
        "schemas/graphql/argus.graphql differs from the code's schema; if intended, run \
         UPDATE_SCHEMAS=1 cargo test -p argus-api --test sdl and commit the file"
    );
}
