//! The scheduler Lambda (`provided.al2023`): reads the plan template named by
//! `EMRSHIP_PLAN_OBJECT` and launches the day's cluster. The logic is
//! `emrship::schedule::handler::handle`; this is only the runtime's loop.

use emrship::schedule::handler::{handle, print_line, HandlerContext, PLAN_OBJECT_ENV};
use lambda_runtime::{service_fn, Error, LambdaEvent};
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), Error> {
    let plan_object = std::env::var(PLAN_OBJECT_ENV).map_err(|_| {
        format!(
            "{PLAN_OBJECT_ENV} is not set: it names the plan template (`emrship schedule` sets it)"
        )
    })?;
    let options = emrship::aws::sdk::AwsOptions::default();
    let context = HandlerContext {
        sdk: emrship::aws::sdk::load(&options).await,
        plan_object,
        path_style: emrship::aws::sdk::endpoint_overridden(&options),
    };
    let context = &context;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
        handle(&event.payload, context, &print_line)
            .await
            .map_err(Error::from)
    }))
    .await
}
