package controllers

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1alpha1 "github.com/aepoperator/capillary-operator/api/v1alpha1"
	"github.com/aepoperator/capillary-operator/internal/flowservice"
	"github.com/aepoperator/capillary-operator/internal/ims"
)

// stepError is a failure of one step of the chain, with what the user sees:
// a CamelCase reason and a message that says what to do. The message never
// holds a request ID, a count or a time, so identical failures write
// identical conditions and status does not flap.
type stepError struct {
	// condition is the step condition the failure belongs to.
	condition string
	reason    string
	message   string
	// terminal failures need a change from the user; they are retried slowly,
	// and at once when the spec or the Secret changes.
	terminal bool
	// retryAfter is the least wait Adobe asked for, if any.
	retryAfter time.Duration
	// kubernetes failures are the API server's, not Adobe's: they are left
	// to the workqueue's backoff and not counted in status.failures.
	kubernetes bool
	// tokenRefused: Platform refused a token IMS had just issued.
	tokenRefused bool
	err          error
}

func (e *stepError) Error() string {
	if e.err == nil {
		return e.message
	}
	return fmt.Sprintf("%s: %v", e.message, e.err)
}

func (e *stepError) Unwrap() error { return e.err }

func terminal(condition, reason, message string, err error) *stepError {
	return &stepError{condition: condition, reason: reason, message: message, terminal: true, err: err}
}

// classify turns an error from Adobe during the step `what` (e.g. "create the
// source connection") into a stepError. Terminal: bad credentials, not
// entitled, refused input. Everything else (5xx, 429, timeouts, network) is
// transient and retried with backoff.
func classify(condition, what string, err error) *stepError {
	var se *stepError
	if errors.As(err, &se) {
		return se
	}
	if ims.IsTerminal(err) {
		return terminal(v1alpha1.ConditionCredentialsReady, v1alpha1.ReasonInvalidCredentials,
			fmt.Sprintf("Adobe IMS refused the credential (%s): check clientId and clientSecret in the Secret against the Adobe Developer Console project", imsCode(err)), err)
	}
	var fe *flowservice.Error
	if errors.As(err, &fe) {
		code := fe.Code
		if code == "" {
			code = fmt.Sprintf("HTTP %d", fe.StatusCode)
		}
		switch {
		case fe.StatusCode == http.StatusUnauthorized:
			// The client renews a rejected token once per call: a second 401
			// means Platform refused a new token too. Once is retried with
			// backoff (a token may be refused in passing); twice in a row is
			// terminal (refusedAgain).
			return &stepError{condition: v1alpha1.ConditionCredentialsReady, reason: v1alpha1.ReasonAdobeUnavailable,
				message:      fmt.Sprintf("%s to %s (%s); retrying with backoff", tokenRefusedMessage, what, code),
				tokenRefused: true, err: err}
		case flowservice.IsForbidden(err):
			return terminal(condition, v1alpha1.ReasonNotEntitled,
				fmt.Sprintf("Adobe refused to %s (%s): give the Developer Console project Experience Platform API access with the Sources permissions, in this org and sandbox", what, code), err)
		case flowservice.IsInvalid(err):
			return terminal(condition, v1alpha1.ReasonAdobeRejected,
				fmt.Sprintf("Adobe refused to %s (%s): %s", what, code, fe.Detail), err)
		}
		return &stepError{condition: condition, reason: v1alpha1.ReasonAdobeUnavailable,
			message:    fmt.Sprintf("Adobe failed to %s (%s); retrying with backoff", what, code),
			retryAfter: fe.RetryAfter, err: err}
	}
	var status apierrors.APIStatus
	if errors.As(err, &status) {
		return kubernetesError(condition, what, err)
	}
	var ie *ims.Error
	if errors.As(err, &ie) {
		return &stepError{condition: v1alpha1.ConditionCredentialsReady, reason: v1alpha1.ReasonAdobeUnavailable,
			message:    fmt.Sprintf("Adobe IMS failed to issue a token (HTTP %d); retrying with backoff", ie.StatusCode),
			retryAfter: ie.RetryAfter, err: err}
	}
	// A 2xx answer whose body is not the JSON Adobe documents: Adobe was
	// reached, so saying it was not would send the user the wrong way.
	var syntaxErr *json.SyntaxError
	var typeErr *json.UnmarshalTypeError
	if errors.As(err, &syntaxErr) || errors.As(err, &typeErr) {
		return &stepError{condition: condition, reason: v1alpha1.ReasonAdobeUnavailable,
			message: fmt.Sprintf("Adobe answered with an unreadable body when asked to %s; retrying with backoff", what), err: err}
	}
	var certErr *tls.CertificateVerificationError
	if errors.As(err, &certErr) {
		return &stepError{condition: condition, reason: v1alpha1.ReasonAdobeUnavailable,
			message: fmt.Sprintf("could not verify the TLS certificate of Adobe's endpoint to %s: check --ims-url and --platform-url, and any proxy that intercepts TLS; retrying with backoff", what), err: err}
	}
	return &stepError{condition: condition, reason: v1alpha1.ReasonAdobeUnavailable,
		message: fmt.Sprintf("could not reach Adobe to %s; retrying with backoff", what), err: err}
}

// deadlineReached turns err into a ReconcileTimeout when the reconcile ran
// out of time: its context's deadline passed, or a wait (a retry, the rate
// limiter) would have outlasted it. A single Adobe request that timed out
// (a *url.Error) stays an Adobe failure.
func deadlineReached(ctx context.Context, err error) error {
	if err == nil {
		return nil
	}
	var urlErr *url.Error
	if !errors.Is(ctx.Err(), context.DeadlineExceeded) && (!errors.Is(err, context.DeadlineExceeded) || errors.As(err, &urlErr)) {
		return err
	}
	condition := v1alpha1.ConditionReady
	var se *stepError
	if errors.As(err, &se) {
		condition = se.condition
	}
	return &stepError{condition: condition, reason: v1alpha1.ReasonReconcileTimeout, err: err,
		message: "the reconcile reached its deadline (--reconcile-timeout) with work left; what was done is recorded and the next pass goes on from there"}
}

// tokenRefusedMessage begins the message of a pass whose new token
// Platform refused.
const tokenRefusedMessage = "Adobe refused a newly issued IMS token"

// refusedAgain makes a refused new token terminal when the pass before
// ended on a refused new token too, or on refused credentials: Platform does
// not accept this credential (its API access withdrawn), and retrying with
// backoff would only ask IMS for token after token.
// prev is the CredentialsReady condition as the pass found it.
func refusedAgain(prev *metav1.Condition, err error) error {
	var se *stepError
	if !errors.As(err, &se) || !se.tokenRefused {
		return err
	}
	c := prev
	if c == nil || c.Status != metav1.ConditionFalse ||
		(c.Reason != v1alpha1.ReasonInvalidCredentials && !strings.HasPrefix(c.Message, tokenRefusedMessage)) {
		return err
	}
	var fe *flowservice.Error
	code := "401"
	if errors.As(err, &fe) && fe.Code != "" {
		code = fe.Code
	}
	return terminal(v1alpha1.ConditionCredentialsReady, v1alpha1.ReasonInvalidCredentials,
		fmt.Sprintf("Adobe refused newly issued IMS tokens for this credential in two passes in a row (%s): its Experience Platform API access may have been withdrawn; check the project and its product profiles in the Adobe Developer Console", code), se.err)
}

// kubernetesError is a failed request to the Kubernetes API server.
func kubernetesError(condition, what string, err error) *stepError {
	return &stepError{condition: condition, reason: v1alpha1.ReasonKubernetesAPIError, kubernetes: true, err: err,
		message: fmt.Sprintf("the Kubernetes API server failed a request to %s (%s); retrying with backoff", what, apierrors.ReasonForError(err))}
}

func imsCode(err error) string {
	var ie *ims.Error
	if errors.As(err, &ie) && ie.Code != "" {
		return ie.Code
	}
	return "refused"
}
