use rental_domain::{Role, UserId};
use uuid::Uuid;

/// The authenticated caller of an operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// Who.
    pub user_id: UserId,
    /// Their roles.
    pub roles: Vec<Role>,
    /// Whether they are a superuser.
    pub is_superuser: bool,
    /// The login session (refresh-token family) the access token belongs to.
    pub session_id: Uuid,
}

impl Principal {
    /// The business itself, for background jobs acting on its behalf (reminders, reports): every permission.
    /// Never handed to a request.
    pub fn system() -> Self {
        Self {
            user_id: UserId::from_uuid(Uuid::nil()),
            roles: vec![Role::Admin],
            is_superuser: true,
            session_id: Uuid::nil(),
        }
    }

    /// Admins are superusers and holders of the admin role.
    pub fn is_admin(&self) -> bool {
        self.is_superuser || self.roles.contains(&Role::Admin)
    }

    /// Staff run the catalogue and the rental desk: holders of the staff role, and admins.
    pub fn is_staff(&self) -> bool {
        self.is_admin() || self.roles.contains(&Role::Staff)
    }

    /// `Ok` for admins.
    ///
    /// # Errors
    /// [`crate::ServiceError::Forbidden`] for everyone else.
    pub fn require_admin(&self) -> crate::ServiceResult<()> {
        if self.is_admin() { Ok(()) } else { Err(crate::ServiceError::Forbidden("this action needs the admin role")) }
    }

    /// `Ok` for staff and admins.
    ///
    /// # Errors
    /// [`crate::ServiceError::Forbidden`] for everyone else.
    pub fn require_staff(&self) -> crate::ServiceResult<()> {
        if self.is_staff() {
            Ok(())
        } else {
            Err(crate::ServiceError::Forbidden("this action needs the staff or admin role"))
        }
    }
}
