//! Lists resolved one item after the other.
//!
//! async-graphql resolves the items of a `Vec` concurrently: every item's
//! future is boxed into a `FuturesOrdered`, with its own task and waker. Our
//! resolvers never wait on each other (they read the in-memory read models,
//! or the log one page at a time), so that bookkeeping is pure cost: for a
//! page of 50 conversations it was a visible share of the server's work.
//! [`Serial`] is a `Vec` to the schema (same type, same SDL) that resolves its
//! items in order instead, like the `#[graphql(serial)]` objects do their
//! fields. Errors are the same as for a `Vec`: the first one ends the list,
//! with the item's path.
//!
//! Decision record: `docs/decisions/serial-resolution.md`.

use std::borrow::Cow;

use async_graphql::parser::types::Field;
use async_graphql::registry::Registry;
use async_graphql::{ContextSelectionSet, OutputType, Positioned, ServerResult, Value};

/// A list the schema shows as `[T!]!`, resolved item by item.
pub(crate) struct Serial<T>(pub Vec<T>);

impl<T> From<Vec<T>> for Serial<T> {
    fn from(items: Vec<T>) -> Self {
        Serial(items)
    }
}

impl<T> FromIterator<T> for Serial<T> {
    fn from_iter<I: IntoIterator<Item = T>>(items: I) -> Self {
        Serial(items.into_iter().collect())
    }
}

impl<T: OutputType> OutputType for Serial<T> {
    fn type_name() -> Cow<'static, str> {
        Vec::<T>::type_name()
    }

    fn qualified_type_name() -> String {
        Vec::<T>::qualified_type_name()
    }

    fn create_type_info(registry: &mut Registry) -> String {
        Vec::<T>::create_type_info(registry)
    }

    async fn resolve(
        &self,
        ctx: &ContextSelectionSet<'_>,
        field: &Positioned<Field>,
    ) -> ServerResult<Value> {
        let mut values = Vec::with_capacity(self.0.len());
        for (index, item) in self.0.iter().enumerate() {
            let ctx_item = ctx.with_index(index);
            let value = OutputType::resolve(item, &ctx_item, field)
                .await
                .map_err(|err| ctx_item.set_error_path(err))?;
            values.push(value);
        }
        Ok(Value::List(values))
    }
}

#[cfg(test)]
mod tests {
    use async_graphql::{EmptyMutation, EmptySubscription, Object, Schema};

    use super::*;

    struct Item(i32);

    #[Object]
    impl Item {
        async fn value(&self) -> async_graphql::Result<i32> {
            if self.0 == 2 {
                Err("two is refused".into())
            } else {
                Ok(self.0)
            }
        }
    }

    struct Query;

    #[Object]
    impl Query {
        async fn vector(&self, upto: i32) -> Option<Vec<Item>> {
            Some((0..upto).map(Item).collect())
        }
        async fn serial(&self, upto: i32) -> Option<Serial<Item>> {
            Some((0..upto).map(Item).collect())
        }
    }

    /// The same query through a `Vec` and through a `Serial`: the same data,
    /// the same errors with the same paths (but the field's name, of the same length).
    #[tokio::test]
    async fn a_serial_list_answers_as_a_vec_does() {
        let schema = Schema::new(Query, EmptyMutation, EmptySubscription);
        assert!(schema.sdl().contains("serial(upto: Int!): [Item!]"));
        for upto in [0, 2, 3, 50] {
            let run = |field: &str| {
                let schema = schema.clone();
                let query = format!("{{ {field}(upto: {upto}) {{ value }} }}");
                async move {
                    let response = schema.execute(query).await;
                    let text = serde_json::to_string(&response).expect("serialises");
                    text.replace("vector", "FIELD").replace("serial", "FIELD")
                }
            };
            let (vec, serial) = (run("vector").await, run("serial").await);
            assert_eq!(vec, serial, "upto {upto}");
            assert_eq!(upto >= 3, serial.contains("two is refused"), "{serial}");
        }
    }
}
