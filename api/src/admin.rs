//! The offline subcommands: `init` creates a company, `token` mints a staff
//! token. Both open the store themselves, so the server must be stopped.

use backchannel_domain::ids::{CompanyId, StaffId, WidgetKey};
use backchannel_domain::model::Actor;
use backchannel_domain::values::Name;
use backchannel_domain::{Command, DomainError};

use crate::auth::StaffIdentity;
use crate::config::Config;
use crate::error::ApiError;
use crate::graphql::operations as op;
use crate::startup::{StartError, open_desk};

#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error(transparent)]
    Start(#[from] StartError),
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    Refused(#[from] ApiError),
}

/// What `init` created.
#[derive(Debug)]
pub struct Initialized {
    pub company: CompanyId,
    pub owner: StaffId,
    pub widget_key: WidgetKey,
    pub owner_token: String,
}

pub async fn init(config: &Config, company: &str, owner: &str) -> Result<Initialized, AdminError> {
    let name = Name::parse(company).map_err(|e| AdminError::Invalid(format!("company: {e}")))?;
    let owner_name = Name::parse(owner).map_err(|e| AdminError::Invalid(format!("owner: {e}")))?;
    let (desk, tokens) = open_desk(config).await?;
    let created = Initialized {
        company: CompanyId::new(),
        owner: StaffId::new(),
        widget_key: WidgetKey::new(),
        owner_token: String::new(),
    };
    let result = desk
        .execute(
            Actor::System,
            op::INIT,
            Command::CreateCompany {
                company: created.company,
                name,
                widget_key: created.widget_key,
                owner: created.owner,
                owner_name,
            },
            None,
        )
        .await;
    desk.close().await;
    result?;
    let token = tokens
        .mint_staff(StaffIdentity {
            staff: created.owner,
            company: created.company,
        })
        .map_err(|e| AdminError::Invalid(e.to_string()))?;
    Ok(Initialized {
        owner_token: token.token,
        ..created
    })
}

/// A server operator's token (`token --operator`): needs only the secret, so
/// it can be minted while the server runs.
pub(crate) fn operator_token(config: &Config) -> Result<String, AdminError> {
    let secret = crate::secret::load_or_create(&config.data_dir, config.secret.as_deref())
        .map_err(StartError::from)?;
    crate::auth::Tokens::new(&secret, config.token_lifetime)
        .mint_operator()
        .map(|m| m.token)
        .map_err(|e| AdminError::Invalid(e.to_string()))
}

pub(crate) async fn token(config: &Config, staff: &str) -> Result<String, AdminError> {
    let staff: StaffId = staff
        .parse()
        .map_err(|e: backchannel_domain::ids::IdParseError| AdminError::Invalid(e.to_string()))?;
    let (desk, tokens) = open_desk(config).await?;
    let found = desk
        .models()
        .state()
        .staff
        .get(&staff)
        .map(|s| (s.company, s.active));
    desk.close().await;
    match found {
        None => Err(ApiError::from(DomainError::NotFound(
            backchannel_domain::error::Missing::Staff,
        ))
        .into()),
        Some((_, false)) => Err(AdminError::Invalid(
            "the staff member is deactivated".to_owned(),
        )),
        Some((company, true)) => tokens
            .mint_staff(StaffIdentity { staff, company })
            .map(|m| m.token)
            .map_err(|e| AdminError::Invalid(e.to_string())),
    }
}
