module CcRelay.Core.Tests.StaleConnectionTests

open Xunit
open CcRelay.Core

let private facts failure reused bytes resent = {
    Failure = failure
    Reused = reused
    AnswerBytes = bytes
    Resent = resent
}

[<Fact>]
let ``a reused connection closed or reset before any answer byte is resent`` () =
    Assert.True(StaleConnection.resend (facts SendFailure.ResponseEnded true 0L false))
    Assert.True(StaleConnection.resend (facts SendFailure.ConnectionReset true 0L false))

[<Fact>]
let ``a new connection is never resent: the upstream may have taken the request`` () =
    Assert.False(StaleConnection.resend (facts SendFailure.ResponseEnded false 0L false))

[<Fact>]
let ``a connection that sent part of an answer is not resent`` () =
    Assert.False(StaleConnection.resend (facts SendFailure.ResponseEnded true 12L false))

[<Fact>]
let ``a resend is not resent`` () =
    Assert.False(StaleConnection.resend (facts SendFailure.ResponseEnded true 0L true))

[<Fact>]
let ``other failures are not resent`` () =
    Assert.False(StaleConnection.resend (facts SendFailure.Other true 0L false))

[<Fact>]
let ``the pooled idle timeout is below the common load balancers' 60 s`` () =
    Assert.True(StaleConnection.idleTimeout < System.TimeSpan.FromSeconds 60.0)
