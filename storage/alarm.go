package storage

import "time"

// Alarm kinds, also the names of the security events the gateway emits for
// them (with the sms_recovery_ prefix for Caddy's events). A store whose
// server can lose or refuse state (Redis) raises them.
const (
	// AlarmStateLost: the server lost the deployment's state; plans are
	// refused until an operator acknowledges the loss.
	AlarmStateLost = "store_state_lost"
	// AlarmLossAcknowledged: an operator acknowledged a loss, here or
	// through another instance; plans run again.
	AlarmLossAcknowledged = "store_loss_acknowledged"
	// AlarmUnsafeServer: a connection was refused because the server would
	// forget state.
	AlarmUnsafeServer = "store_unsafe_server"
)

// Alarm is something about its server that a store reports to the
// gateway, which logs it as an error, counts it and emits a Caddy event.
// Detail holds no secret.
type Alarm struct {
	Kind   string
	Detail string
}

// Loss is a loss of state that is not acknowledged yet.
type Loss struct {
	// Since is when this process noticed it.
	Since time.Time `json:"since"`
	// Detail says how it was noticed.
	Detail string `json:"detail"`
}
