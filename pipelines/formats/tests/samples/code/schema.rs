// @generated automatically by Diesel CLI.

diesel::table! {
    harvests (id) {
        id -> Integer,
        day -> Date,
        crop -> Text,
        kilos -> Double,
    }
}
