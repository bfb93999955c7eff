namespace CcRelay.Core

open System
open System.Text
open System.Text.Json

/// The state of a repaired Anthropic SSE stream: the tool-use blocks whose input is being held back.
type ToolJsonStream = private {
    Held: Map<int, StringBuilder>
    /// How many blocks' input was repaired so far.
    Repaired: int
}

/// Repairs malformed tool-call JSON (the `repair_tool_json` transformer): in a non-streaming answer, the
/// `_raw_arguments` a translated answer kept for arguments that were not JSON; in an Anthropic SSE stream, the
/// `input_json_delta` fragments of each `tool_use` block, held back and sent as one repaired delta at the
/// block's end.
[<RequireQualifiedAccess>]
module ToolJsonRepair =

    let private parsesAsObject (text: string) : bool =
        try
            use document = JsonDocument.Parse(text)
            document.RootElement.ValueKind = JsonValueKind.Object
        with
        | :? JsonException
        // a lone surrogate (`"\ud800"` decodes to one) cannot be transcoded to UTF-8
        | :? ArgumentException -> false

    /// The usual breakage of model-written JSON, mended: a markdown fence around it, text before the first
    /// `{`, trailing commas, Python's `True`/`False`/`None`, an unterminated string, unclosed brackets (a
    /// cut-off answer). Some repaired object, or None when the text still is not a JSON object.
    let repair (text: string) : string option =
        if parsesAsObject text then
            Some text
        else
            let trimmed = text.Trim()

            let unfenced =
                if trimmed.StartsWith("```", StringComparison.Ordinal) then
                    let firstLine = trimmed.IndexOf '\n'

                    let body =
                        if firstLine < 0 then
                            ""
                        else
                            trimmed.Substring(firstLine + 1)

                    let close = body.LastIndexOf("```", StringComparison.Ordinal)
                    if close < 0 then body else body.Substring(0, close)
                else
                    trimmed

            match unfenced.IndexOf '{' with
            | -1 ->
                if String.IsNullOrWhiteSpace unfenced then
                    Some "{}"
                else
                    None
            | first ->
                let source = unfenced.Substring first
                let out = StringBuilder(source.Length + 8)
                let closers = Collections.Generic.Stack<char>()
                let mutable inString = false
                let mutable escaped = false
                let mutable i = 0

                // drops a comma that the next non-space character makes trailing
                let dropTrailingComma () =
                    let mutable j = out.Length - 1

                    while j >= 0 && Char.IsWhiteSpace out[j] do
                        j <- j - 1

                    if j >= 0 && out[j] = ',' then
                        out.Remove(j, 1) |> ignore

                let word (literal: string) =
                    String.CompareOrdinal(source, i, literal, 0, literal.Length) = 0
                    && (i + literal.Length = source.Length
                        || not (Char.IsLetterOrDigit source[i + literal.Length]))

                while i < source.Length do
                    let c = source[i]

                    if inString then
                        out.Append c |> ignore

                        if escaped then
                            escaped <- false
                        elif c = '\\' then
                            escaped <- true
                        elif c = '"' then
                            inString <- false

                        i <- i + 1
                    else
                        match c with
                        | '"' ->
                            inString <- true
                            out.Append c |> ignore
                            i <- i + 1
                        | '{' ->
                            closers.Push '}'
                            out.Append c |> ignore
                            i <- i + 1
                        | '[' ->
                            closers.Push ']'
                            out.Append c |> ignore
                            i <- i + 1
                        | '}'
                        | ']' ->
                            dropTrailingComma ()

                            if closers.Count > 0 then
                                out.Append(closers.Pop()) |> ignore

                            i <- i + 1

                            // the top-level object closed: what follows is not part of it
                            if closers.Count = 0 then
                                i <- source.Length
                        | 'T' when word "True" ->
                            out.Append "true" |> ignore
                            i <- i + 4
                        | 'F' when word "False" ->
                            out.Append "false" |> ignore
                            i <- i + 5
                        | 'N' when word "None" ->
                            out.Append "null" |> ignore
                            i <- i + 4
                        | _ ->
                            out.Append c |> ignore
                            i <- i + 1

                if inString then
                    if escaped then
                        out.Remove(out.Length - 1, 1) |> ignore

                    out.Append '"' |> ignore

                // a cut-off member: `"key"` or `"key":` with no value gets a null
                let tail = out.ToString().TrimEnd()

                if tail.EndsWith ':' then
                    out.Append "null" |> ignore

                while closers.Count > 0 do
                    dropTrailingComma ()
                    out.Append(closers.Pop()) |> ignore

                let repaired = out.ToString()
                if parsesAsObject repaired then Some repaired else None

    // ---------------------------
    // Non-streaming answers
    // ---------------------------

    /// A message answer with each `tool_use` input of the form `{"_raw_arguments": "…"}` (what a translated
    /// answer keeps for arguments that were not JSON) replaced by the repaired arguments, when they can be
    /// repaired. Re-serialises the answer, only when something was repaired. Returns the body (None: as it
    /// was) and the count of repaired inputs.
    let answer (body: ReadOnlySpan<byte>) : byte array option * int =
        let raw =
            try
                use document = JsonDocument.Parse(body.ToArray())
                let root = document.RootElement

                match root.ValueKind, root.TryGetProperty "content" with
                | JsonValueKind.Object, (true, content) when content.ValueKind = JsonValueKind.Array ->
                    Some(Nodes.JsonNode.Parse(root.GetRawText()))
                | _ -> None
            with :? JsonException ->
                None

        match raw with
        | Some(NonNull node) ->
            let mutable count = 0

            match node["content"] with
            | :? Nodes.JsonArray as blocks ->
                for block in blocks do
                    match block with
                    | :? Nodes.JsonObject as block when
                        (match block["type"] with
                         | null -> false
                         | t -> t.ToString() = "tool_use")
                        ->
                        match block["input"] with
                        | :? Nodes.JsonObject as input when input.Count = 1 && input.ContainsKey "_raw_arguments" ->
                            match input["_raw_arguments"] with
                            | null -> ()
                            | rawArguments ->
                                match repair (rawArguments.GetValue<string>()) with
                                | Some fixedJson ->
                                    block["input"] <- Nodes.JsonNode.Parse fixedJson
                                    count <- count + 1
                                | None -> ()
                        | _ -> ()
                    | _ -> ()
            | _ -> ()

            if count = 0 then
                None, 0
            else
                Some(Encoding.UTF8.GetBytes(node.ToJsonString())), count
        | _ -> None, 0

    // ---------------------------
    // Streams
    // ---------------------------

    /// A stream at its start.
    let start: ToolJsonStream = { Held = Map.empty; Repaired = 0 }

    /// How many tool inputs of the stream were repaired so far.
    let repaired (state: ToolJsonStream) : int = state.Repaired

    let private eventName (frame: string) : string =
        if frame.StartsWith("event:", StringComparison.Ordinal) then
            let stop = frame.IndexOfAny([| '\r'; '\n' |])
            frame.Substring(6, (if stop < 0 then frame.Length else stop) - 6).Trim()
        else
            ""

    let private dataOf (frame: string) : string =
        frame.Split('\n')
        |> Array.map _.TrimEnd('\r')
        |> Array.filter _.StartsWith("data:", StringComparison.Ordinal)
        |> Array.map (fun line -> line.Substring(5).TrimStart(' '))
        |> String.concat "\n"

    let private deltaFrame (index: int) (json: string) : byte array =
        let data =
            use stream = new IO.MemoryStream()

            (use writer = new Utf8JsonWriter(stream)
             writer.WriteStartObject()
             writer.WriteString("type", "content_block_delta")
             writer.WriteNumber("index", index)
             writer.WriteStartObject "delta"
             writer.WriteString("type", "input_json_delta")
             writer.WriteString("partial_json", json)
             writer.WriteEndObject()
             writer.WriteEndObject())

            Encoding.UTF8.GetString(stream.ToArray())

        Encoding.UTF8.GetBytes($"event: content_block_delta\ndata: %s{data}\n\n")

    /// One whole SSE frame of an Anthropic stream in, what goes out for it: the frame itself, nothing (a
    /// tool input fragment held back), or at a tool block's end its whole input (repaired when it was not
    /// valid JSON) followed by the end frame.
    let frame (state: ToolJsonStream) (bytes: ReadOnlySpan<byte>) : ToolJsonStream * byte array =
        let text = Encoding.UTF8.GetString bytes
        let bytes = bytes.ToArray()

        let index (data: JsonElement) =
            match data.TryGetProperty "index" with
            | true, i when i.ValueKind = JsonValueKind.Number -> i.GetInt32()
            | _ -> -1

        let passThrough () = state, bytes

        match eventName text with
        | "content_block_start"
        | "content_block_delta"
        | "content_block_stop" as name ->
            try
                use document = JsonDocument.Parse(dataOf text)
                let data = document.RootElement
                let i = index data

                match name with
                | "content_block_start" ->
                    match data.TryGetProperty "content_block" with
                    | true, block when
                        (match block.TryGetProperty "type" with
                         | true, t -> t.ValueEquals "tool_use"
                         | _ -> false)
                        && i >= 0
                        ->
                        {
                            state with
                                Held = state.Held.Add(i, StringBuilder())
                        },
                        bytes
                    | _ -> passThrough ()
                | "content_block_delta" ->
                    match state.Held.TryFind i, data.TryGetProperty "delta" with
                    | Some held, (true, delta) when
                        (match delta.TryGetProperty "type" with
                         | true, t -> t.ValueEquals "input_json_delta"
                         | _ -> false)
                        ->
                        match delta.TryGetProperty "partial_json" with
                        | true, part when part.ValueKind = JsonValueKind.String ->
                            held.Append(part.GetString()) |> ignore
                            state, [||]
                        | _ -> passThrough ()
                    | _ -> passThrough ()
                | _ ->
                    match state.Held.TryFind i with
                    | Some held ->
                        let json = held.ToString()

                        let sent, fixedCount =
                            if json.Length = 0 || parsesAsObject json then
                                json, 0
                            else
                                match repair json with
                                | Some fixedJson -> fixedJson, 1
                                | None -> json, 0

                        let delta = if sent.Length = 0 then [||] else deltaFrame i sent

                        {
                            Held = state.Held.Remove i
                            Repaired = state.Repaired + fixedCount
                        },
                        Array.append delta (bytes)
                    | None -> passThrough ()
            with :? JsonException ->
                passThrough ()
        | _ -> passThrough ()

    /// Whether the stream still holds tool input back (it ended inside a tool block).
    let holding (state: ToolJsonStream) : bool = not state.Held.IsEmpty
