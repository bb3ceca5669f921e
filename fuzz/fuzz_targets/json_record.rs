//! JSON text through the JSON decoder (UTF-8 and depth checks) and each family's deserialization,
//! validation and encoding: the first byte picks the family, the rest is the JSON text. Run it with
//! `-dict=fuzz/dict/records.dict` so that field names and enum values are found quickly.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&first, text)) = data.split_first() else {
        return;
    };
    let f = esurio_fuzz::family_index(first);
    let _ = esurio_fuzz::auto_decoders();
    esurio_fuzz::run(f, &esurio_fuzz::json_decoders()[f], text, false);
});
