namespace CcRelay.Core

// TEMPORARY: stands in for BedrockAnswer.fs (built on another branch) until it merges.

open System

[<RequireQualifiedAccess>]
module BedrockAnswer =
    let errorBody (httpStatus: int) (_errorTypeHeader: string option) (body: ReadOnlySpan<byte>) : int * byte array =
        httpStatus, body.ToArray()

