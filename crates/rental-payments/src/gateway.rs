//! [`StripeGateway`]: the [`PaymentGateway`] port on async-stripe's client.
//!
//! Every call is bounded twice: each HTTP attempt by `attempt_timeout_ms` (the client's own timeout) and the
//! whole call, retries and waits included, by `call_timeout_ms`. Failures that may pass (connection errors,
//! timeouts, 409 lock conflicts, 429, 5xx) are retried up to `max_attempts` times with a doubling wait, and a
//! mutating call carries the same `Idempotency-Key` on every attempt, so Stripe answers a repeat with the
//! first result instead of charging again. The client's own retry strategies are not used: `Idempotent` sends
//! once, and its `Retry` strategies would make up a new key per call.

use std::collections::HashMap;
use std::future::Future;
use std::time::Duration;

use rental_domain::{Currency, Money};
use rental_service::{
    CheckoutRequest, CustomerRequest, GatewayCheckout, GatewayPayment, GatewayPaymentStatus, PaymentGateway,
    PaymentRequest, PortError, PortFuture,
};
use stripe::{Client, ClientBuilder, IdempotencyKey, RequestStrategy, StripeError, StripeRequest};
use stripe_checkout::checkout_session::{
    CreateCheckoutSession, CreateCheckoutSessionLineItems, CreateCheckoutSessionLineItemsPriceData,
    CreateCheckoutSessionPaymentIntentData, ProductData,
};
use stripe_core::customer::CreateCustomer;
use stripe_core::payment_intent::{
    CancelPaymentIntent, CapturePaymentIntent, CreatePaymentIntent, CreatePaymentIntentOffSession,
    RetrievePaymentIntent,
};
use stripe_core::refund::CreateRefund;
use stripe_core::{PaymentIntent, PaymentIntentCaptureMethod, PaymentIntentSetupFutureUsage, PaymentIntentStatus};

use crate::config::StripeConfig;
use crate::error::{PaymentError, PaymentResult};

/// The metadata key holding our own record's reference on every object we create.
pub const REFERENCE_KEY: &str = "reference";

/// The Stripe implementation of [`PaymentGateway`].
#[derive(Debug, Clone)]
pub struct StripeGateway {
    client: Client,
    config: StripeConfig,
}

impl StripeGateway {
    /// Builds the client from `config`.
    ///
    /// # Errors
    /// [`PaymentError::NotConfigured`] without a secret key; [`PaymentError::Config`] when the key or the base
    /// URL cannot be used.
    pub fn new(config: StripeConfig) -> PaymentResult<Self> {
        let Some(secret) = config.secret_key.as_ref().filter(|key| !key.is_empty()) else {
            return Err(PaymentError::NotConfigured);
        };
        if !config.api_base.ends_with('/') {
            return Err(PaymentError::Config(format!("stripe.api_base must end with '/': {}", config.api_base)));
        }
        let client = ClientBuilder::new(secret.expose())
            .url(config.api_base.clone())
            .timeout(config.attempt_timeout())
            .app_info("rental-api", Some(env!("CARGO_PKG_VERSION").into()), None)
            .build()
            .map_err(|err| PaymentError::Config(err.to_string()))?;
        Ok(Self { client, config })
    }

    /// The configuration the gateway was built with.
    pub fn config(&self) -> &StripeConfig {
        &self.config
    }

    /// Runs `attempt` until it succeeds, fails for good, runs out of attempts or of time. `key` is the
    /// idempotency key of a mutating call, sent unchanged on every attempt.
    async fn call<T, F, Fut>(&self, key: Option<&str>, attempt: F) -> Result<T, PortError>
    where
        F: Fn(RequestStrategy) -> Fut,
        Fut: Future<Output = Result<T, StripeError>>,
    {
        let strategy = match key {
            Some(key) => RequestStrategy::Idempotent(
                IdempotencyKey::new(key).map_err(|err| PortError::Rejected(format!("idempotency key: {err}")))?,
            ),
            None => RequestStrategy::Once,
        };
        let bound = self.config.call_timeout();
        let attempts = self.config.max_attempts.max(1);
        let run = async {
            let mut tries = 0;
            loop {
                tries += 1;
                match attempt(strategy.clone()).await {
                    Ok(value) => return Ok(value),
                    Err(err) => {
                        let failure = Failure::of(err, self.config.attempt_timeout());
                        if !failure.retryable || tries >= attempts {
                            return Err(failure.error);
                        }
                        tracing::debug!(attempt = tries, error = %failure.error, "stripe call failed, retrying");
                        tokio::time::sleep(self.config.backoff(tries + 1)).await;
                    }
                }
            }
        };
        match tokio::time::timeout(bound, run).await {
            Ok(result) => result,
            Err(_elapsed) => Err(PortError::Timeout(bound)),
        }
    }
}

/// A failed attempt: the port's error and whether another attempt may succeed.
struct Failure {
    error: PortError,
    retryable: bool,
}

impl Failure {
    fn of(err: StripeError, attempt_bound: Duration) -> Self {
        match err {
            StripeError::Stripe(api, status) => {
                let code = api.code.as_ref().map(|code| code.as_str().to_owned());
                let mut reason = api.decline_code.clone().or(code).unwrap_or_else(|| api.type_.as_str().to_owned());
                if let Some(message) = &api.message {
                    reason = format!("{reason}: {message}");
                }
                let reason = format!("stripe answered {status}: {reason}");
                match status {
                    409 | 429 | 500..=599 => Self { error: PortError::Unavailable(reason), retryable: true },
                    _ => Self { error: PortError::Rejected(reason), retryable: false },
                }
            }
            StripeError::Timeout => Self { error: PortError::Timeout(attempt_bound), retryable: true },
            StripeError::ClientError(message) => {
                Self { error: PortError::Unavailable(format!("cannot reach stripe: {message}")), retryable: true }
            }
            // An answer we cannot read will not read better the second time.
            StripeError::JSONDeserialize(message) => Self {
                error: PortError::Unavailable(format!("unexpected answer from stripe: {message}")),
                retryable: false,
            },
            StripeError::ConfigError(message) => {
                Self { error: PortError::Unavailable(format!("stripe client: {message}")), retryable: false }
            }
        }
    }
}

fn stripe_currency(currency: Currency) -> stripe_types::Currency {
    // Stripe writes codes in lower case; every code the domain accepts parses (unknown ones as `Unknown`).
    match currency.as_str().to_ascii_lowercase().parse() {
        Ok(code) => code,
        Err(never) => match never {},
    }
}

fn reference_metadata(reference: &str) -> HashMap<String, String> {
    HashMap::from([(REFERENCE_KEY.to_owned(), reference.to_owned())])
}

fn status_of(status: &PaymentIntentStatus) -> GatewayPaymentStatus {
    match status {
        PaymentIntentStatus::RequiresPaymentMethod => GatewayPaymentStatus::RequiresPaymentMethod,
        PaymentIntentStatus::RequiresConfirmation => GatewayPaymentStatus::RequiresConfirmation,
        PaymentIntentStatus::RequiresAction => GatewayPaymentStatus::RequiresAction,
        PaymentIntentStatus::Processing => GatewayPaymentStatus::Processing,
        PaymentIntentStatus::RequiresCapture => GatewayPaymentStatus::RequiresCapture,
        PaymentIntentStatus::Canceled => GatewayPaymentStatus::Canceled,
        PaymentIntentStatus::Succeeded => GatewayPaymentStatus::Succeeded,
        other => GatewayPaymentStatus::Other(other.as_str().to_owned()),
    }
}

/// Our view of a payment intent.
///
/// # Errors
/// [`PortError::Unavailable`] when its currency is not a code the domain accepts.
pub fn payment_of(intent: &PaymentIntent) -> Result<GatewayPayment, PortError> {
    let currency = Currency::parse(&intent.currency.to_string())
        .map_err(|_| PortError::Unavailable(format!("stripe answered an unknown currency {}", intent.currency)))?;
    Ok(GatewayPayment {
        id: intent.id.as_str().to_owned(),
        status: status_of(&intent.status),
        amount: Money::new(intent.amount, currency),
        amount_received_minor: intent.amount_received,
        amount_capturable_minor: intent.amount_capturable,
        client_secret: intent.client_secret.clone(),
        reference: intent.metadata.get(REFERENCE_KEY).cloned(),
        payment_method: intent.payment_method.as_ref().map(|method| method.id().as_str().to_owned()),
    })
}

impl PaymentGateway for StripeGateway {
    fn create_payment<'a>(&'a self, request: &'a PaymentRequest) -> PortFuture<'a, GatewayPayment> {
        Box::pin(async move {
            let mut create =
                CreatePaymentIntent::new(request.amount.amount_minor, stripe_currency(request.amount.currency))
                    .metadata(reference_metadata(&request.reference))
                    .capture_method(if request.capture_later {
                        PaymentIntentCaptureMethod::Manual
                    } else {
                        PaymentIntentCaptureMethod::Automatic
                    });
            if let Some(customer) = &request.customer {
                create = create.customer(customer.as_str());
            }
            if let Some(description) = &request.description {
                create = create.description(description.as_str());
            }
            if request.save_card {
                create = create.setup_future_usage(PaymentIntentSetupFutureUsage::OffSession);
            }
            if let Some(method) = &request.off_session_payment_method {
                create = create
                    .payment_method(method.as_str())
                    .off_session(CreatePaymentIntentOffSession::Bool(true))
                    .confirm(true);
            }
            let intent = self
                .call(Some(&request.idempotency_key), |strategy| {
                    create.customize().request_strategy(strategy).send(&self.client)
                })
                .await?;
            payment_of(&intent)
        })
    }

    fn create_checkout<'a>(&'a self, request: &'a CheckoutRequest) -> PortFuture<'a, GatewayCheckout> {
        Box::pin(async move {
            let mut price = CreateCheckoutSessionLineItemsPriceData::new(stripe_currency(request.amount.currency));
            price.product_data = Some(ProductData::new(request.description.as_str()));
            price.unit_amount = Some(request.amount.amount_minor);
            let mut line = CreateCheckoutSessionLineItems::new();
            line.price_data = Some(price);
            line.quantity = Some(1);
            let mut intent_data = CreateCheckoutSessionPaymentIntentData::new();
            intent_data.metadata = Some(reference_metadata(&request.reference));
            let mut create = CreateCheckoutSession::new()
                .mode(stripe_checkout::CheckoutSessionMode::Payment)
                .line_items(vec![line])
                .success_url(request.success_url.as_str())
                .cancel_url(request.cancel_url.as_str())
                .client_reference_id(request.reference.as_str())
                .metadata(reference_metadata(&request.reference))
                .payment_intent_data(intent_data);
            if let Some(customer) = &request.customer {
                create = create.customer(customer.as_str());
            }
            let session = self
                .call(Some(&request.idempotency_key), |strategy| {
                    create.customize().request_strategy(strategy).send(&self.client)
                })
                .await?;
            Ok(GatewayCheckout {
                id: session.id.as_str().to_owned(),
                url: session.url.clone(),
                payment_intent: session.payment_intent.as_ref().map(|intent| intent.id().as_str().to_owned()),
            })
        })
    }

    fn create_customer<'a>(&'a self, request: &'a CustomerRequest) -> PortFuture<'a, String> {
        Box::pin(async move {
            let create = CreateCustomer::new()
                .email(request.email.as_str())
                .name(request.name.as_str())
                .metadata(reference_metadata(&request.reference));
            let customer = self
                .call(Some(&request.idempotency_key), |strategy| {
                    create.customize().request_strategy(strategy).send(&self.client)
                })
                .await?;
            Ok(customer.id.as_str().to_owned())
        })
    }

    fn retrieve_payment<'a>(&'a self, payment_id: &'a str) -> PortFuture<'a, GatewayPayment> {
        Box::pin(async move {
            let retrieve = RetrievePaymentIntent::new(payment_id);
            let intent =
                self.call(None, |strategy| retrieve.customize().request_strategy(strategy).send(&self.client)).await?;
            payment_of(&intent)
        })
    }

    fn capture<'a>(
        &'a self,
        payment_id: &'a str,
        amount_minor: Option<i64>,
        idempotency_key: &'a str,
    ) -> PortFuture<'a, GatewayPayment> {
        Box::pin(async move {
            let mut capture = CapturePaymentIntent::new(payment_id);
            if let Some(amount) = amount_minor {
                capture = capture.amount_to_capture(amount);
            }
            let intent = self
                .call(Some(idempotency_key), |strategy| {
                    capture.customize().request_strategy(strategy).send(&self.client)
                })
                .await?;
            payment_of(&intent)
        })
    }

    fn release<'a>(&'a self, payment_id: &'a str, idempotency_key: &'a str) -> PortFuture<'a, GatewayPayment> {
        Box::pin(async move {
            let cancel = CancelPaymentIntent::new(payment_id);
            let intent = self
                .call(Some(idempotency_key), |strategy| {
                    cancel.customize().request_strategy(strategy).send(&self.client)
                })
                .await?;
            payment_of(&intent)
        })
    }

    fn refund<'a>(
        &'a self,
        payment_id: &'a str,
        amount_minor: Option<i64>,
        idempotency_key: &'a str,
    ) -> PortFuture<'a, String> {
        Box::pin(async move {
            let mut create = CreateRefund::new().payment_intent(payment_id);
            if let Some(amount) = amount_minor {
                create = create.amount(amount);
            }
            let refund = self
                .call(Some(idempotency_key), |strategy| {
                    create.customize().request_strategy(strategy).send(&self.client)
                })
                .await?;
            Ok(refund.id.as_str().to_owned())
        })
    }
}
