module CcRelay.Core.Tests.SigV4Tests

open System
open System.Text
open Xunit
open CcRelay.Core

let private credentials = {
    AccessKeyId = "AKIDEXAMPLE"
    SecretAccessKey = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
    SessionToken = None
}

let private emptyHash =
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

let private at = DateTimeOffset(2015, 8, 30, 12, 36, 0, TimeSpan.Zero)

let private sign (url: string) (headers: (string * string) list) (credentials: AwsCredentials) =
    let options =
        UriCreationOptions(DangerousDisablePathAndQueryCanonicalization = true)

    SigV4.sign credentials "us-east-1" "bedrock" at "POST" (Uri(url, &options)) headers emptyHash
    |> Map.ofList

let private signedHeaders (authorization: string) : string =
    let start = authorization.IndexOf("SignedHeaders=") + "SignedHeaders=".Length
    authorization.Substring(start, authorization.IndexOf(',', start) - start)

// AWS's SigV4 test suite (aws-sig-v4-test-suite), `get-vanilla` and `post-vanilla`: signed headers host;x-amz-date.
[<Theory>]
[<InlineData("GET", "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31")>]
[<InlineData("POST", "5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b")>]
let ``the signature of AWS's vanilla test-suite requests`` (method: string, expected: string) =
    let canonicalRequest =
        String.concat "\n" [
            method
            "/"
            ""
            "host:example.amazonaws.com"
            "x-amz-date:20150830T123600Z"
            ""
            "host;x-amz-date"
            emptyHash
        ]

    Assert.Equal(
        expected,
        SigV4.signature credentials.SecretAccessKey "us-east-1" "service" "20150830T123600Z" canonicalRequest
    )

[<Fact>]
let ``sha256Hex of the empty payload`` () =
    Assert.Equal(emptyHash, SigV4.sha256Hex ReadOnlySpan.Empty)

    Assert.Equal(
        "44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a",
        SigV4.sha256Hex (ReadOnlySpan(Encoding.UTF8.GetBytes "{}"))
    )

[<Theory>]
[<InlineData("/model/anthropic.claude-sonnet-4-6/invoke", "/model/anthropic.claude-sonnet-4-6/invoke")>]
[<InlineData("/model/us.anthropic.claude-sonnet-4-5-20250929-v1:0/invoke",
             "/model/us.anthropic.claude-sonnet-4-5-20250929-v1%3A0/invoke")>]
[<InlineData("/model/arn:aws:bedrock:us-east-1:1:application-inference-profile%2Fabc/invoke",
             "/model/arn%3Aaws%3Abedrock%3Aus-east-1%3A1%3Aapplication-inference-profile%252Fabc/invoke")>]
[<InlineData("/a~b_c.d-e/!$'()*", "/a~b_c.d-e/%21%24%27%28%29%2A")>]
[<InlineData("", "/")>]
[<InlineData("/", "/")>]
let ``canonicalUri encodes the wire path once more, per segment`` (wirePath: string, expected: string) =
    Assert.Equal(expected, SigV4.canonicalUri wirePath)

[<Fact>]
let ``sign adds the date, the payload hash and the authorization`` () =
    let added =
        sign "https://bedrock-runtime.us-east-1.amazonaws.com/model/m/invoke" [] credentials

    Assert.Equal<string seq>([ "authorization"; "x-amz-content-sha256"; "x-amz-date" ], added.Keys)
    Assert.Equal("20150830T123600Z", added["x-amz-date"])
    Assert.Equal(emptyHash, added["x-amz-content-sha256"])

    Assert.StartsWith(
        "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/bedrock/aws4_request, SignedHeaders=host;x-amz-content-sha256;x-amz-date, Signature=",
        added["authorization"]
    )

[<Fact>]
let ``a session token is added and signed`` () =
    let added =
        sign "https://h.example/p" [] {
            credentials with
                SessionToken = Some "token"
        }

    Assert.Equal("token", added["x-amz-security-token"])
    Assert.Equal("host;x-amz-content-sha256;x-amz-date;x-amz-security-token", signedHeaders added["authorization"])

[<Fact>]
let ``content-type and x-amz headers are signed, others never`` () =
    let added =
        sign
            "https://h.example/p"
            [
                "Content-Type", "application/json"
                "X-Amz-Target", " a   b "
                "Connection", "keep-alive"
                "Authorization", "Bearer x"
                "Accept", "application/json"
                "X-Amzn-Bedrock-Service-Tier", "priority"
            ]
            credentials

    Assert.Equal("content-type;host;x-amz-content-sha256;x-amz-date;x-amz-target", signedHeaders added["authorization"])

[<Fact>]
let ``given x-amz-date or payload hash headers are replaced by the signer's own`` () =
    let plain = sign "https://h.example/p" [] credentials

    let given =
        sign "https://h.example/p" [ "x-amz-date", "19700101T000000Z"; "x-amz-content-sha256", "x" ] credentials

    Assert.Equal(plain["authorization"], given["authorization"])

[<Fact>]
let ``the signature depends on the port, the path and the query`` () =
    let signatures =
        [
            "https://h.example/p"
            "https://h.example:8443/p"
            "https://h.example/q"
            "https://h.example/p?a=1"
            "https://h.example/p?a=2"
        ]
        |> List.map (fun url -> (sign url [] credentials)["authorization"])

    Assert.Equal(signatures.Length, List.distinct signatures |> List.length)

[<Fact>]
let ``the query is signed sorted, so the order on the wire does not matter`` () =
    Assert.Equal(
        (sign "https://h.example/p?b=2&a=1" [] credentials)["authorization"],
        (sign "https://h.example/p?a=1&b=2" [] credentials)["authorization"]
    )

[<Fact>]
let ``a default port is the same as none`` () =
    Assert.Equal(
        (sign "https://h.example:443/p" [] credentials)["authorization"],
        (sign "https://h.example/p" [] credentials)["authorization"]
    )
