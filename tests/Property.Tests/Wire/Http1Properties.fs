module CcRelay.Core.Properties.Http1Properties

open System
open System.Text
open FsCheck.FSharp
open Xunit
open CcRelay.Core
open CcRelay.Core.Properties.Generators

// ---------------------------
// Chunked encoding
// ---------------------------

/// A body, and its chunked encoding in the variations upstreams send (hex case, leading zeros, extensions,
/// bare-LF line ends, trailers), followed by bytes of the next response that the decoder must not touch.
let private chunkedBody =
    gen {
        let! data = Gen.arrayOf (Gen.choose (0, 255) |> Gen.map byte)
        let! sizes = Gen.listOf (Gen.choose (1, 40))
        let! lineEnd = Gen.elements [ "\r\n"; "\n" ]
        let! upper = Gen.elements [ false; true ]
        let! zeros = Gen.choose (0, 3)
        let! extension = Gen.elements [ ""; ";a=b"; ";x"; " ;q=\"v\"" ]
        let! trailers = Gen.elements [ []; [ "x-t: 1" ]; [ "a: b"; "c: d" ] ]
        let! next = Gen.elements [ ""; "HTTP/1.1 200 OK\r\n"; "garbage" ]
        let out = ResizeArray<byte>()

        let ascii (text: string) =
            out.AddRange(Encoding.ASCII.GetBytes text)

        let mutable offset = 0

        let size (n: int) =
            String('0', zeros) + (if upper then n.ToString "X" else n.ToString "x")

        for chunk in sizes do
            if offset < data.Length then
                let n = min chunk (data.Length - offset)
                ascii (size n + extension + lineEnd)
                out.AddRange(data[offset .. offset + n - 1])
                ascii lineEnd
                offset <- offset + n

        if offset < data.Length then
            ascii (size (data.Length - offset) + lineEnd)
            out.AddRange(data[offset..])
            ascii lineEnd

        ascii (size 0 + extension + lineEnd)

        for trailer in trailers do
            ascii (trailer + lineEnd)

        ascii lineEnd
        let encoded = out.ToArray()
        return data, encoded, Encoding.ASCII.GetBytes next
    }

/// Decodes reads the way the host's body stream does: a buffer of unread bytes goes through `step`; inside a
/// chunk with nothing buffered, data is read straight into the caller's memory (`skipData`). Returns the data,
/// the final decoder, and the bytes never consumed.
let private decodeLikeTheHost (reads: byte array list) (maxData: int) : byte array * ChunkDecoder * byte array =
    let data = ResizeArray<byte>()
    let mutable decoder = Chunked.start
    let mutable pending: byte array = [||]
    let mutable queue = reads

    let finished () =
        decoder.Phase = ChunkPhase.Done || decoder.Phase = ChunkPhase.Invalid

    let mutable stuck = false

    while not (finished ()) && not stuck do
        if pending.Length > 0 then
            let step = Chunked.step decoder (ReadOnlySpan pending) maxData
            Assert.InRange(step.Consumed, 0, pending.Length)
            Assert.True(step.DataLength = 0 || step.DataStart + step.DataLength <= step.Consumed)
            Assert.True(step.DataLength <= maxData)
            data.AddRange(pending[step.DataStart .. step.DataStart + step.DataLength - 1])
            decoder <- step.Decoder
            pending <- pending[step.Consumed ..]
        else
            match queue with
            | [] -> stuck <- true
            | read :: rest when decoder.Phase = ChunkPhase.Data ->
                let n = int (min decoder.Remaining (int64 (min read.Length maxData)))
                data.AddRange(read[.. n - 1])
                decoder <- Chunked.skipData decoder n
                queue <- if n < read.Length then read[n..] :: rest else rest
            | read :: rest ->
                pending <- read
                queue <- rest

    data.ToArray(), decoder, Array.concat (pending :: queue)

[<Fact>]
let ``a chunked body decodes to its data however it is read, and nothing after it is consumed`` () =
    Check.quick
        500
        (Prop.forAll
            (Check.arb (
                gen {
                    let! data, encoded, next = chunkedBody
                    let! reads = chunksOf (Array.append encoded next)

                    let! maxData =
                        Gen.frequency [ 1, Gen.constant 1; 3, Gen.choose (1, 64); 1, Gen.constant 4096 ]

                    return data, next, reads, maxData
                }
            ))
            (fun (data, next, reads, maxData) ->
                let decoded, decoder, unread = decodeLikeTheHost reads maxData
                Assert.Equal(ChunkPhase.Done, decoder.Phase)
                Assert.Equal<byte array>(data, decoded)
                Assert.Equal<byte array>(next, unread)))

[<Fact>]
let ``any bytes at all: step never fails, never reports data it was not given, and ends or asks for more`` () =
    Check.quick
        1000
        (Prop.forAll
            (Check.arb (
                gen {
                    let! mutated =
                        Gen.oneof [
                            Gen.arrayOf (
                                Gen.elements [ '0'B; '5'B; 'a'B; 'F'B; ';'B; ' 'B; '\r'B; '\n'B; 'x'B; 0uy; 255uy ]
                            )
                            chunkedBody
                            |> Gen.bind (fun (_, encoded, _) ->
                                gen {
                                    let! at = Gen.choose (0, max 0 (encoded.Length - 1))
                                    let! b = Gen.choose (0, 255)
                                    let copy = Array.copy encoded

                                    if copy.Length > 0 then
                                        copy[at] <- byte b

                                    return copy
                                })
                        ]

                    let! reads = chunksOf mutated
                    let! maxData = Gen.choose (1, 64)
                    return mutated, reads, maxData
                }
            ))
            (fun (input, reads, maxData) ->
                let decoded, decoder, unread = decodeLikeTheHost reads maxData
                Assert.True(decoded.Length + unread.Length <= input.Length)

                // stopped early only at the end or at broken framing; else everything was consumed
                if decoder.Phase <> ChunkPhase.Done && decoder.Phase <> ChunkPhase.Invalid then
                    Assert.Empty unread))

// ---------------------------
// Response heads
// ---------------------------

/// A header field value as upstreams send it: visible ASCII and inner spaces, no surrounding whitespace.
let private fieldValue =
    Gen.elements [ "a"; "Z"; "0"; "-"; "/"; ";"; "="; "\""; ","; " "; "\t"; "~"; "\u00e9" ]
    |> stringOf 12
    |> Gen.map (fun value -> value.Trim(' ', '\t'))

let private responseHead =
    gen {
        let! status = Gen.choose (200, 599)
        let! reason = Gen.elements [ ""; " OK"; " Not Found"; " Whatever it says" ]
        let! fields = Gen.listOf (Gen.zip tokenName fieldValue)

        let! cased =
            fields
            |> List.map (fun (name, value) -> recase name |> Gen.map (fun n -> n, value))
            |> Gen.sequenceToList

        let! spacing =
            Gen.listOfLength
                cased.Length
                (Gen.zip (Gen.elements [ ""; " "; "  "; "\t" ]) (Gen.elements [ ""; " "; "\t" ]))

        let! lineEnd = Gen.elements [ "\r\n"; "\n" ]

        let text =
            $"HTTP/1.1 {status}{reason}{lineEnd}"
            + String.Concat(
                List.map2 (fun (name, value) (before, after) -> $"{name}:{before}{value}{after}{lineEnd}") cased spacing
            )
            + lineEnd

        return status, cased, Encoding.Latin1.GetBytes text
    }

type private Fields() =
    let fields = ResizeArray<string * string>()
    member _.All = List.ofSeq fields

    interface IResponseHeaderSink with
        member _.Header(name, value) =
            fields.Add(Encoding.Latin1.GetString name, Encoding.Latin1.GetString value)

[<Fact>]
let ``a rendered head parses back to its status and fields, and ends exactly where it ends`` () =
    Check.property (
        Prop.forAll (Check.arb responseHead) (fun (status, fields, head) ->
            let withBody = Array.append head "{\"body\":1}\r\n\r\n"B
            Assert.Equal(head.Length, Http1.headEnd (ReadOnlySpan withBody))

            // no prefix of a head looks complete
            for cut in 0 .. head.Length - 1 do
                Assert.Equal(-1, Http1.headEnd (ReadOnlySpan(head, 0, cut)))

            let sink = Fields()

            match Http1.parseResponseHead (ReadOnlySpan head) false sink with
            | Ok parsed ->
                Assert.Equal(status, parsed.Status)
                Assert.Equal<(string * string) list>(fields, sink.All)
            | Error e -> failwith e)
    )

[<Fact>]
let ``any bytes at all: parsing a head never fails, and an Ok head has a valid status`` () =
    Check.quick
        1000
        (Prop.forAll
            (Check.arb (
                responseHead
                |> Gen.bind (fun (_, _, head) ->
                    gen {
                        let! at = Gen.choose (0, head.Length - 1)
                        let! b = Gen.elements [ 0uy; 9uy; 10uy; 13uy; 32uy; 58uy; 127uy; 200uy; 'x'B ]
                        let copy = Array.copy head
                        copy[at] <- b
                        return copy
                    })
            ))
            (fun head ->
                match Http1.parseResponseHead (ReadOnlySpan head) false null with
                | Ok parsed -> Assert.InRange(parsed.Status, 100, 599)
                | Error e -> Assert.False(String.IsNullOrEmpty e)))
