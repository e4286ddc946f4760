//! Typed ids: an app id cannot be passed where a collection id is wanted.
//!
//! Every id is a 64-bit number on the wire (real app ids exceed 2^31). Methods
//! take `impl Into<AppId>` and so on, so plain numbers still work —
//! `client.get_items(3883548539, 3883549661, &query)` — while ids read from
//! the API keep their type and cannot be swapped:
//!
//! ```compile_fail
//! use carthooks_core::{AppId, CollectionId, Endpoint, ItemsQuery};
//! let (app, coll) = (AppId::new(1), CollectionId::new(2));
//! // Swapped: does not compile.
//! let _ = Endpoint::<Vec<serde_json::Value>>::get_items(coll, app, &ItemsQuery::new());
//! ```

macro_rules! ids {
    ($($(#[$doc:meta])* $name:ident;)*) => {$(
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
        #[derive(serde::Serialize, serde::Deserialize)]
        #[serde(transparent)]
        pub struct $name(u64);

        impl $name {
            /// The id `id`.
            pub const fn new(id: u64) -> Self {
                Self(id)
            }

            /// The number.
            pub const fn get(self) -> u64 {
                self.0
            }
        }

        impl From<u64> for $name {
            fn from(id: u64) -> Self {
                Self(id)
            }
        }

        impl From<$name> for u64 {
            fn from(id: $name) -> u64 {
                id.0
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                std::fmt::Display::fmt(&self.0, f)
            }
        }

        impl std::str::FromStr for $name {
            type Err = std::num::ParseIntError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                s.parse().map(Self)
            }
        }
    )*};
}

ids! {
    /// An app (`{app}` in paths).
    AppId;
    /// A collection of an app (`{coll}`).
    CollectionId;
    /// An item (record) of a collection (`{item}`).
    ItemId;
    /// A field of a collection, such as a sub-form field (`{field}`).
    FieldId;
    /// A row of a sub-form field (`{sub}`).
    SubItemId;
    /// A user (`{user}`).
    UserId;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_numbers_on_the_wire_and_in_text() {
        let app = AppId::from(3_883_548_539);
        assert_eq!(serde_json::to_string(&app).unwrap(), "3883548539");
        assert_eq!(serde_json::from_str::<AppId>("3883548539").unwrap(), app);
        assert_eq!(app.to_string(), "3883548539");
        assert_eq!("7".parse::<ItemId>().unwrap().get(), 7);
        assert_eq!(u64::from(UserId::new(9)), 9);
    }
}
