module CcRelay.Core.Tests.Pipelines.PluginPoolTests

open Xunit
open CcRelay.Core

let private slot running outstanding streams : PluginSlot = {
    Running = running
    Outstanding = outstanding
    Streams = streams
}

let private idle = slot true 0 0
let private empty = slot false 0 0

[<Fact>]
let ``a call goes to an idle running process before a process is started or a busy one is waited for`` () =
    Assert.Equal(PoolChoice.Slot 2, PluginPool.place [| slot true 1 0; empty; idle; empty |] 0L)

[<Fact>]
let ``when every running process is busy, a call starts a process in an empty slot`` () =
    Assert.Equal(PoolChoice.Slot 1, PluginPool.place [| slot true 1 0; empty; empty |] 0L)

[<Fact>]
let ``when every slot is busy, a call waits behind the one holding the fewest calls`` () =
    Assert.Equal(PoolChoice.Slot 1, PluginPool.place [| slot true 3 0; slot true 1 0; slot true 2 0 |] 0L)

[<Fact>]
let ``a call prefers the idle process with fewer streams bound to it`` () =
    Assert.Equal(PoolChoice.Slot 1, PluginPool.place [| slot true 0 2; slot true 0 1 |] 0L)

[<Fact>]
let ``a stream binds to the slot with the fewest streams, even if that starts a process`` () =
    Assert.Equal(PoolChoice.Slot 1, PluginPool.bind [| slot true 0 1; empty |] 0L)
    // equal streams: as a call (the idle running one)
    Assert.Equal(PoolChoice.Slot 1, PluginPool.bind [| empty; idle |] 0L)

[<Fact>]
let ``a bound stream stays on its slot, busy or restarting, and moves only when its slot cannot start`` () =
    let slots = [| slot true 4 3; idle; empty |]
    Assert.Equal(PoolChoice.Slot 0, PluginPool.follow slots 0 0L)
    // its process died: it is started again for the stream
    Assert.Equal(PoolChoice.Slot 2, PluginPool.follow slots 2 0L)
    // ... unless starts are held back: bound anew to a running one
    Assert.Equal(PoolChoice.Slot 1, PluginPool.follow slots 2 500L)

[<Fact>]
let ``with starts held back and no process running, a call goes nowhere and says for how long`` () =
    Assert.Equal(PoolChoice.HeldBack 750L, PluginPool.place [| empty; empty |] 750L)
    Assert.Equal(PoolChoice.HeldBack 750L, PluginPool.bind [| empty |] 750L)
    // a running process still takes calls
    Assert.Equal(PoolChoice.Slot 1, PluginPool.place [| empty; slot true 2 0 |] 750L)

[<Fact>]
let ``one or two losses in a row restart at once; from the third, starts wait 250 ms doubling to 30 s`` () =
    Assert.Equal<int64 list>([ 0L; 0L; 0L; 250L; 500L; 1000L; 2000L ], [ 0..6 ] |> List.map PluginPool.backoffMs)

    Assert.Equal(30_000L, PluginPool.backoffMs 100)
    Assert.Equal(30_000L, PluginPool.backoffMs System.Int32.MaxValue)
    Assert.Equal(0L, PluginPool.heldBackFor 2 1_000L 1_000L)
    Assert.Equal(150L, PluginPool.heldBackFor 3 1_000L 1_100L)
    Assert.Equal(0L, PluginPool.heldBackFor 3 1_000L 1_250L)

[<Fact>]
let ``choose places a call, binds a stream's first event and follows its binding after`` () =
    let slots = [| slot true 1 0; slot true 0 2; empty |]
    // a call: the idle running process
    Assert.Equal(PluginPool.place slots 0L, PluginPool.choose slots PoolCall.Call 0L)
    Assert.Equal(PoolChoice.Slot 1, PluginPool.choose slots PoolCall.Call 0L)
    // a first event: the fewest streams, then as a call (starting a process beats waiting behind a busy one)
    Assert.Equal(PoolChoice.Slot 2, PluginPool.choose slots (PoolCall.Event -1) 0L)
    // a bound stream's event: its slot, busy as it is
    Assert.Equal(PoolChoice.Slot 1, PluginPool.choose slots (PoolCall.Event 1) 0L)
    Assert.Equal(PoolChoice.Slot 2, PluginPool.choose slots (PoolCall.Event 2) 0L)
    Assert.Equal(PoolChoice.Slot 0, PluginPool.choose slots (PoolCall.Event 2) 500L)

let private plugin (name: string) (command: string) : PluginConfig = {
    Name = name
    Command = command
    Args = []
    Env = []
    TimeoutMs = 1000
    MemoryMb = 64
    CpuSeconds = 10
    OnError = OnError.Fail
    Sees = [ PluginKind.Request ]
    EventTimeoutMs = 1000
    Processes = 1
}

[<Fact>]
let ``a reload replaces the pools of removed plugins and of plugins whose settings changed, only those`` () =
    let a, b, c = plugin "a" "/bin/a", plugin "b" "/bin/b", plugin "c" "/bin/c"

    let configured = [| a; { b with Env = [ "MODE", "strict" ] } |]

    Assert.Equal<string array>([| "b"; "c" |], PluginPool.replaced configured [| a; b; c |])
    Assert.Equal<string array>([||], PluginPool.replaced [| a; b; c |] [| c; a |])
    Assert.Equal<string array>([| "a" |], PluginPool.replaced [||] [| a |])

[<Fact>]
let ``a pool has drained when no call is in flight and no stream is bound`` () =
    Assert.True(PluginPool.drained [| idle; empty |])
    Assert.False(PluginPool.drained [| idle; slot true 1 0 |])
    Assert.False(PluginPool.drained [| slot false 0 1 |])

[<Fact>]
let ``the pool's counts: running, busy, waiting and bound streams`` () =
    let counts =
        PluginPool.counts [| slot true 3 1; slot true 0 2; slot false 1 0; empty |]

    Assert.Equal(
        {
            Running = 2
            Busy = 2
            Waiting = 2
            Streams = 3
        },
        counts
    )

// ---------------------------
// plugins.<name>.processes
// ---------------------------

let private load (toml: string) : ConfigLoad =
    match Toml.parse ("[[providers]]\nname = \"anthropic\"\ntype = \"anthropic\"\n\n" + toml) with
    | Ok document -> ConfigDecode.decode (fun _ -> None) document
    | Error e -> failwith e.Message

[<Fact>]
let ``processes defaults to 4 and loads from 1 to 64`` () =
    match
        load
            "[plugins.d]\ncommand = \"/usr/bin/d\"\n\n[plugins.one]\ncommand = \"/usr/bin/one\"\nprocesses = 1\n\n[plugins.many]\ncommand = \"/usr/bin/many\"\nprocesses = 64\n"
    with
    | Loaded(config, _) ->
        Assert.Equal<(string * int) list>(
            [ "d", 4; "many", 64; "one", 1 ],
            config.Pipelines.Plugins |> List.map (fun p -> p.Name, p.Processes) |> List.sort
        )
    | Invalid(errors, _) -> failwith (errors |> List.map string |> String.concat "\n")

[<Fact>]
let ``processes out of range or not an integer is an error at its path, every one listed`` () =
    match
        load
            "[plugins.zero]\ncommand = \"/usr/bin/z\"\nprocesses = 0\n\n[plugins.huge]\ncommand = \"/usr/bin/h\"\nprocesses = 65\n\n[plugins.text]\ncommand = \"/usr/bin/t\"\nprocesses = \"four\"\n"
    with
    | Loaded _ -> failwith "loaded"
    | Invalid(errors, _) ->
        let paths = errors |> List.map _.Path |> List.sort

        Assert.Equal<string list>(
            [ "plugins.huge.processes"; "plugins.text.processes"; "plugins.zero.processes" ],
            paths
        )

        Assert.All(
            errors |> List.filter (fun e -> e.Path <> "plugins.text.processes"),
            fun e -> Assert.Contains("from 1 to 64", e.Message)
        )
