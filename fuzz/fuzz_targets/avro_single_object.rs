//! The Avro body decoder and the Avro -> wire-struct deserializer (`esurio::decode::avro_de`), deep:
//! the first byte picks the family, the rest is the body behind a valid single-object header
//! (`C3 01` + the family schema's fingerprint), so no input is wasted on framing.
//!
//! Besides `esurio_fuzz::run`'s properties: a body that decodes Ok is a value of the schema.
#![no_main]

use esurio::decode::Payload;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&first, body)) = data.split_first() else {
        return;
    };
    let f = esurio_fuzz::family_index(first);
    let decoder = &esurio_fuzz::auto_decoders()[f];
    let bytes = esurio_fuzz::single_object(f, body);
    esurio_fuzz::run_with(f, decoder, &bytes, false, |p| match p {
        Payload::Avro(v) => assert!(
            v.validate(decoder.schema()),
            "decoded Avro value does not match the schema: {v:?}"
        ),
        Payload::Json(_) => panic!("a single-object frame decoded as JSON"),
    });
});
