module CcRelay.Core.Tests.StaleConnectionTests

open Xunit
open CcRelay.Core

let private facts failure reused started resent = {
    Failure = failure
    Reused = reused
    AnswerStarted = started
    Resent = resent
}

[<Fact>]
let ``a reused connection closed or reset before any answer is resent`` () =
    Assert.True(StaleConnection.resend (facts SendFailure.ResponseEnded true false false))
    Assert.True(StaleConnection.resend (facts SendFailure.ConnectionReset true false false))

[<Fact>]
let ``a new connection is never resent: the upstream may have taken the request`` () =
    Assert.False(StaleConnection.resend (facts SendFailure.ResponseEnded false false false))

[<Fact>]
let ``a connection that may have sent part of an answer is not resent`` () =
    Assert.False(StaleConnection.resend (facts SendFailure.ResponseEnded true true false))

[<Fact>]
let ``a resend is not resent`` () =
    Assert.False(StaleConnection.resend (facts SendFailure.ResponseEnded true false true))

[<Fact>]
let ``other failures are not resent`` () =
    Assert.False(StaleConnection.resend (facts SendFailure.Other true false false))

[<Fact>]
let ``the pooled idle timeout is below the common load balancers' 60 s`` () =
    Assert.True(StaleConnection.idleTimeout < System.TimeSpan.FromSeconds 60.0)
