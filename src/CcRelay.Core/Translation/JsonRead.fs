namespace CcRelay.Core

open System.Text.Json

/// Reading other APIs' JSON (`JsonElement`) leniently: a missing member and a `null` are the same.
[<RequireQualifiedAccess>]
module internal JsonRead =

    /// The member `name` of an object, unless it is missing or null (None too when `element` is not an object).
    let tryProperty (element: JsonElement) (name: string) : JsonElement voption =
        match element.ValueKind with
        | JsonValueKind.Object ->
            match element.TryGetProperty name with
            | true, value when value.ValueKind <> JsonValueKind.Null -> ValueSome value
            | _ -> ValueNone
        | _ -> ValueNone

    /// The member `name` when it is a string.
    let tryString (element: JsonElement) (name: string) : string option =
        match tryProperty element name with
        | ValueSome value when value.ValueKind = JsonValueKind.String -> Option.ofObj (value.GetString())
        | _ -> None

    /// A token count in a usage object: the member `name` of `element` when it is a positive integer, else 0
    /// (missing, null, negative, not a number, no `element`).
    let tokens (element: JsonElement voption) (name: string) : int64 =
        match element |> ValueOption.bind (fun e -> tryProperty e name) with
        | ValueSome value when value.ValueKind = JsonValueKind.Number ->
            match value.TryGetInt64() with
            | true, n when n > 0L -> n
            | _ -> 0L
        | _ -> 0L
