//! The flags every AWS command takes. They feed one SDK config per run (`aws::sdk`).

use crate::aws::sdk::AwsOptions;

#[derive(Debug, Clone, Default, clap::Args)]
pub struct AwsArgs {
    /// Named profile from ~/.aws/config (else AWS_PROFILE, else the default chain).
    #[arg(long, value_name = "NAME")]
    pub profile: Option<String>,
    /// Region (else the spec's region).
    #[arg(long, value_name = "REGION")]
    pub region: Option<String>,
    /// Send every AWS call to this endpoint (an emulator, a VPC endpoint). AWS_ENDPOINT_URL
    /// and the per-service AWS_ENDPOINT_URL_<SERVICE> variables are honoured without it.
    #[arg(long, value_name = "URL")]
    pub endpoint_url: Option<String>,
}

impl AwsArgs {
    /// SDK options for a command whose spec names `spec_region`.
    pub fn options(&self, spec_region: Option<&str>) -> AwsOptions {
        AwsOptions {
            profile: self.profile.clone(),
            region: self
                .region
                .clone()
                .or_else(|| spec_region.map(str::to_string)),
            endpoint_url: self.endpoint_url.clone(),
        }
    }
}
