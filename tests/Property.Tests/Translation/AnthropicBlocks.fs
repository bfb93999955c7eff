/// What every translated stream's properties check: the Anthropic event sequence a client accepts.
module CcRelay.Core.Properties.AnthropicBlocks

open System.Text
open Xunit
open CcRelay.Core

/// The Anthropic stream rules a client enforces: `message_start` first; indexes 0, 1, 2… in the order
/// started; one block open at a time; each delta on the open block and of its kind; every block stopped.
/// Returns each block's kind, content and signature.
let blocks (events: AnthropicEvent list) : (StartedBlock * string * string) list =
    match events with
    | AnthropicEvent.MessageStart _ :: rest ->
        let folder
            (
                open': (int * StartedBlock * StringBuilder * string) option,
                finished: (StartedBlock * string * string) list
            )
            (event: AnthropicEvent)
            =
            match open', event with
            | None, AnthropicEvent.BlockStart(index, block) ->
                Assert.Equal(finished.Length, index)
                Some(index, block, StringBuilder(), ""), finished
            | Some(index, StartedBlock.Text, text, _), AnthropicEvent.TextDelta(i, t) when i = index ->
                text.Append t |> ignore
                open', finished
            | Some(index, StartedBlock.Thinking, text, _), AnthropicEvent.ThinkingDelta(i, t) when i = index ->
                text.Append t |> ignore
                open', finished
            | Some(index, StartedBlock.Thinking, text, ""), AnthropicEvent.SignatureDelta(i, s) when i = index ->
                Some(index, StartedBlock.Thinking, text, s), finished
            | Some(index, StartedBlock.ToolUse _, text, _), AnthropicEvent.InputJsonDelta(i, t) when i = index ->
                text.Append t |> ignore
                open', finished
            | Some(index, block, text, signature), AnthropicEvent.BlockStop i when i = index ->
                None, finished @ [ block, text.ToString(), signature ]
            | None, (AnthropicEvent.MessageDelta _ | AnthropicEvent.MessageStop) -> open', finished
            | _, event -> failwith $"out of order: %A{event} with %A{open'}"

        let open', finished = List.fold folder (None, []) rest
        Assert.True(open'.IsNone, "a block was left open")
        finished
    | other -> failwith $"message_start must come first, got %A{other |> List.tryHead}"
