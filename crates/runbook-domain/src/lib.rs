//! Domain types of Runbook Studio: runbooks, blocks, versions, executions, roles,
//! and the validation rules every front end shares. Pure data: this crate does no I/O.

pub mod block;
pub mod execution;
pub mod hosts;
pub mod role;
pub mod runbook;
pub mod security;
pub mod template;
pub mod validation;

pub use block::{
    ApiCallBlock, Block, CommandBlock, ConditionalBlock, FailurePolicy, HttpMethod,
    InstructionBlock, Shell, TimerBlock,
};
pub use execution::{
    Branch, ControlAction, Execution, ExecutionStatus, HttpResponse, OutputPage, StepDetail,
    StepResult, StepStatus, StopRequest, TimerProgress,
};
pub use role::Role;
pub use runbook::{
    Param, ParamType, Runbook, RunbookDraft, RunbookSummary, RunbookUpdate, VersionInfo,
};
pub use security::{
    AuditEntry, AuditEvent, AuditOutcome, ChainBreak, ChainVerifier, CredentialInfo,
    CredentialKind, User, UserChange,
};
pub use validation::{FieldError, ValidationErrors};
