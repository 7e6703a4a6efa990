#!/usr/bin/env escript
%% -*- erlang -*-
%%! -noshell +sbwt none +sbwtdcpu none +sbwtdio none
%%
%% A media gateway controller (MGC) built on Erlang/OTP's megaco
%% application: a real H.248 stack that nobody in this project wrote.
%% Written for Pinhole's tests (docs/megaco.md); run by
%% tests/src/megaco.rs.
%%
%% It waits for a ServiceChange Restart from two media gateways (MGs),
%% answers them, then for each call:
%%
%%   MG1  Add $ (or --termination) in context $, Local CHOOSE, no Remote
%%   MG2  Add $ in context $, Local CHOOSE, Remote = MG1's Local
%%   MG1  Modify of MG1's termination, Remote = MG2's Local
%%   ...  --hold-ms
%%   MG1  Subtract of MG1's termination (by name)
%%   MG2  Subtract * in MG2's context (context-level)
%%
%% One line per step on stdout, "EVENT name key=value ...". Exit 0 after
%% "EVENT done"; any error or timeout prints "ERROR reason" on stderr and
%% exits non-zero. Every wait is bounded, and --max-ms bounds the whole run.
%%
%% Usage: mgc.escript --listen IP:PORT [--mid MID] [--calls N]
%%          [--hold-ms MS] [--encoding pretty|compact] [--termination NAME]
%%          [--mg1-mid MID] [--mg2-mid MID] [--wait-ms MS]
%%          [--request-ms MS] [--max-ms MS]
%%        mgc.escript --check   (exit 0 when megaco can be loaded)
%%
%% MIDs are written as in H.248 text: [IP]:PORT, <domain.name>:PORT,
%% <domain.name>, or a bare device name.

-module(pinhole_megaco_mgc).
-mode(compile).

-export([main/1]).
%% megaco_user callbacks
-export([handle_connect/3, handle_connect/4, handle_disconnect/4,
         handle_syntax_error/4, handle_message_error/4,
         handle_trans_request/4, handle_trans_long_request/4,
         handle_trans_reply/5, handle_trans_ack/5,
         handle_unexpected_trans/4, handle_trans_request_abort/5,
         handle_segment_reply/6]).

%% Record layouts of megaco's v1 messages and internal types (field order
%% as the megaco application uses them; written here because Debian's
%% erlang-megaco ships no include files).
-record(megaco_receive_handle, {local_mid, encoding_mod, encoding_config,
                                send_mod, protocol_version = dynamic}).
-record(megaco_term_id, {contains_wildcards = false, id}).
-record(megaco_incr_timer, {wait_for, factor, incr, max_retries}).
-record('ActionRequest', {contextId, contextRequest = asn1_NOVALUE,
                          contextAttrAuditReq = asn1_NOVALUE,
                          commandRequests = []}).
-record('ActionReply', {contextId, errorDescriptor = asn1_NOVALUE,
                        contextReply = asn1_NOVALUE, commandReply = []}).
-record('CommandRequest', {command, optional = asn1_NOVALUE,
                           wildcardReturn = asn1_NOVALUE}).
-record('AmmRequest', {terminationID = [], descriptors = []}).
-record('AmmsReply', {terminationID = [], terminationAudit = asn1_NOVALUE}).
-record('SubtractRequest', {terminationID = [],
                            auditDescriptor = asn1_NOVALUE}).
-record('ErrorDescriptor', {errorCode, errorText = asn1_NOVALUE}).
-record('ServiceChangeRequest', {terminationID = [], serviceChangeParms}).
-record('ServiceChangeReply', {terminationID = [], serviceChangeResult = []}).
-record('ServiceChangeParm', {serviceChangeMethod,
                              serviceChangeAddress = asn1_NOVALUE,
                              serviceChangeVersion = asn1_NOVALUE,
                              serviceChangeProfile = asn1_NOVALUE,
                              serviceChangeReason,
                              serviceChangeDelay = asn1_NOVALUE,
                              serviceChangeMgcId = asn1_NOVALUE,
                              timeStamp = asn1_NOVALUE,
                              nonStandardData = asn1_NOVALUE}).
-record('ServiceChangeResParm', {serviceChangeMgcId = asn1_NOVALUE,
                                 serviceChangeAddress = asn1_NOVALUE,
                                 serviceChangeVersion = asn1_NOVALUE,
                                 serviceChangeProfile = asn1_NOVALUE,
                                 timeStamp = asn1_NOVALUE}).
-record('MediaDescriptor', {termStateDescr = asn1_NOVALUE,
                            streams = asn1_NOVALUE}).
-record('StreamParms', {localControlDescriptor = asn1_NOVALUE,
                        localDescriptor = asn1_NOVALUE,
                        remoteDescriptor = asn1_NOVALUE}).
-record('LocalControlDescriptor', {streamMode = asn1_NOVALUE,
                                   reserveValue = asn1_NOVALUE,
                                   reserveGroup = asn1_NOVALUE,
                                   propertyParms = []}).
-record('LocalRemoteDescriptor', {propGrps = []}).
-record('PropertyParm', {name, value, extraInfo = asn1_NOVALUE}).
-record('IP4Address', {address, portNumber = asn1_NOVALUE}).
-record('DomainName', {name, portNumber = asn1_NOVALUE}).
-record(send_handle, {socket, addr, port}).

-define(CHOOSE_CTX, 16#FFFFFFFE).
-define(NULL_CTX, 0).
-define(ROOT, #megaco_term_id{id = ["root"]}).

-define(DEFAULTS, #{mid => undefined, calls => 1, hold_ms => 1000,
                    encoding => pretty, termination => "$",
                    mg1_mid => undefined, mg2_mid => undefined,
                    wait_ms => 10000, request_ms => 3000, max_ms => 25000}).

%%----------------------------------------------------------------------
%% main
%%----------------------------------------------------------------------

main(["--check"]) ->
    case code:ensure_loaded(megaco) of
        {module, megaco} -> io:format("megaco ~s~n", [megaco_vsn()]), halt(0);
        _ -> fail(3, "the megaco application is not installed")
    end;
main(Args) ->
    Opts = try parse_args(Args, ?DEFAULTS)
           catch throw:{usage, Usage} -> fail(2, "usage: " ++ Usage)
           end,
    Listen = case maps:find(listen, Opts) of
                 {ok, L} -> L;
                 error -> fail(2, "usage: --listen IP:PORT is required")
             end,
    watchdog(maps:get(max_ms, Opts)),
    try run(Listen, Opts) of
        ok -> halt(0)
    catch
        throw:{fail, Why} -> fail(1, Why);
        C:E:St -> fail(1, io_lib:format("~p:~p ~p", [C, E, St]))
    end.

run({Ip, Port}, Opts) ->
    Mid = case maps:get(mid, Opts) of
              undefined -> {ip4Address, #'IP4Address'{address = tuple_to_list(Ip),
                                                       portNumber = Port}};
              M -> M
          end,
    ok = application:start(megaco),
    RequestMs = maps:get(request_ms, Opts),
    ok = megaco:start_user(Mid, [{user_mod, ?MODULE}, {user_args, [self()]}]),
    %% Retransmit every RequestMs/3, give up after RequestMs.
    Tries = 3,
    Timer = #megaco_incr_timer{wait_for = max(1, RequestMs div Tries),
                               factor = 1, incr = 0, max_retries = Tries - 1},
    ok = megaco:update_user_info(Mid, request_timer, Timer),
    ok = megaco:update_user_info(Mid, long_request_timer, RequestMs),
    RH0 = megaco:user_info(Mid, receive_handle),
    RH = RH0#megaco_receive_handle{encoding_mod = encoder(maps:get(encoding, Opts)),
                                   encoding_config = [],
                                   send_mod = megaco_udp},
    {ok, Sup} = megaco_udp:start_transport(),
    case megaco_udp:open(Sup, [{port, Port}, {udp_options, [{ip, Ip}]},
                              {receive_handle, RH}]) of
        {ok, _Handle, _ControlPid} -> ok;
        Err -> throw({fail, io_lib:format("cannot listen on ~s: ~p",
                                          [addr(Ip, Port), Err])})
    end,
    event("listening", [{addr, addr(Ip, Port)}, {mid, mid_text(Mid)},
                        {encoding, maps:get(encoding, Opts)},
                        {megaco, megaco_vsn()}]),
    Deadline = now_ms() + maps:get(wait_ms, Opts),
    Mgs = wait_mgs(Opts, #{}, Deadline),
    Mg1 = maps:get(1, Mgs),
    Mg2 = maps:get(2, Mgs),
    lists:foreach(fun(N) -> call(N, Mg1, Mg2, Opts) end,
                  lists:seq(1, maps:get(calls, Opts))),
    event("done", [{calls, maps:get(calls, Opts)}]),
    ok.

%% Waits until both MG slots are filled by a ServiceChange.
wait_mgs(_Opts, Mgs, _Deadline) when map_size(Mgs) =:= 2 ->
    Mgs;
wait_mgs(Opts, Mgs, Deadline) ->
    Left = max(0, Deadline - now_ms()),
    receive
        {servicechange, CH, Method, Reason} ->
            Mid = element(3, CH),
            Peer = peer(CH),
            Known = [K || {K, {C, _}} <- maps:to_list(Mgs), C =:= CH],
            case Known of
                [K] ->
                    %% A repeated ServiceChange from a registered MG.
                    event("servicechange", [{mg, K}, {mid, mid_text(Mid)},
                                            {peer, Peer}, {method, Method},
                                            {reason, Reason}, {repeat, true}]),
                    wait_mgs(Opts, Mgs, Deadline);
                [] ->
                    Slot = slot(Mid, Mgs, Opts),
                    event("servicechange", [{mg, Slot}, {mid, mid_text(Mid)},
                                            {peer, Peer}, {method, Method},
                                            {reason, Reason}]),
                    wait_mgs(Opts, Mgs#{Slot => {CH, Peer}}, Deadline)
            end;
        {disconnect, CH, Why} ->
            event("disconnect", [{mid, mid_text(element(3, CH))},
                                 {reason, io_lib:format("~0p", [Why])}]),
            wait_mgs(Opts, Mgs, Deadline)
    after Left ->
        throw({fail, io_lib:format("timeout: ~b of 2 MGs registered within ~b ms",
                                   [map_size(Mgs), maps:get(wait_ms, Opts)])})
    end.

%% MG1 or MG2: by --mg1-mid/--mg2-mid when given, else the first free.
slot(Mid, Mgs, Opts) ->
    Text = mid_text(Mid),
    Want = fun(K) -> case maps:get(K, Opts) of
                         undefined -> undefined;
                         M -> mid_text(M)
                     end
           end,
    case {Want(mg1_mid), Want(mg2_mid)} of
        {Text, _} -> 1;
        {_, Text} -> 2;
        {W1, W2} ->
            Free = [K || K <- [1, 2], not maps:is_key(K, Mgs)],
            %% A slot reserved for another MID is not free.
            Open = [K || K <- Free,
                         (K =:= 1 andalso W1 =:= undefined)
                             orelse (K =:= 2 andalso W2 =:= undefined)],
            case Open of
                [K | _] -> K;
                [] -> throw({fail, "ServiceChange from unexpected MID " ++ Text})
            end
    end.

%%----------------------------------------------------------------------
%% One call
%%----------------------------------------------------------------------

call(N, {CH1, _}, {CH2, _}, Opts) ->
    Term = term_id(maps:get(termination, Opts)),
    Choose = [[prop("v", "0"), prop("c", "IN IP4 $"),
               prop("m", "audio $ RTP/AVP 0")]],
    %% 1. MG1: Add, Local CHOOSE, no Remote.
    {Ctx1, T1, Local1} = add(CH1, Term, Choose, undefined),
    event("add_reply", [{call, N}, {mg, 1}, {context, Ctx1},
                        {termination, term_text(T1)}, {local, sdp_addr(Local1)}]),
    %% 2. MG2: Add, Local CHOOSE, Remote = MG1's Local.
    {Ctx2, T2, Local2} = add(CH2, Term, Choose, Local1),
    event("add_reply", [{call, N}, {mg, 2}, {context, Ctx2},
                        {termination, term_text(T2)}, {local, sdp_addr(Local2)},
                        {remote, sdp_addr(Local1)}]),
    %% 3. MG1: Modify, Remote = MG2's Local.
    Mod = cmd({modReq, #'AmmRequest'{terminationID = [T1],
                                     descriptors = [media(undefined, Local2)]}}),
    [#'ActionReply'{commandReply = ModReplies}] = request(CH1, Ctx1, [Mod], "modify"),
    [T1m] = [T || {modReply, #'AmmsReply'{terminationID = [T]}} <- ModReplies],
    event("modify_reply", [{call, N}, {mg, 1}, {context, Ctx1},
                           {termination, term_text(T1m)},
                           {remote, sdp_addr(Local2)}]),
    timer:sleep(maps:get(hold_ms, Opts)),
    %% 4. Subtract MG1's termination by name, MG2's with * (context level).
    subtract(N, 1, CH1, Ctx1, T1),
    subtract(N, 2, CH2, Ctx2, #megaco_term_id{contains_wildcards = true,
                                               id = ["*"]}),
    ok.

add(CH, Term, Local, Remote) ->
    Add = cmd({addReq, #'AmmRequest'{terminationID = [Term],
                                     descriptors = [media(Local, Remote)]}}),
    case request(CH, ?CHOOSE_CTX, [Add], "add") of
        [#'ActionReply'{contextId = Ctx, commandReply = [{addReply, R}]}] ->
            #'AmmsReply'{terminationID = [T], terminationAudit = Audit} = R,
            case local_of(Audit) of
                undefined ->
                    throw({fail, io_lib:format("add reply from ~s without Local: ~0p",
                                               [mid_text(element(3, CH)), R])});
                L ->
                    _ = sdp_addr(L),
                    {Ctx, T, L}
            end;
        Other ->
            throw({fail, io_lib:format("unexpected add reply ~0p", [Other])})
    end.

subtract(N, Mg, CH, Ctx, Term) ->
    Sub = cmd({subtractReq, #'SubtractRequest'{terminationID = [Term]}}),
    Replies = request(CH, Ctx, [Sub], "subtract"),
    Terms = [term_text(T) || #'ActionReply'{commandReply = Rs} <- Replies,
                             {subtractReply, #'AmmsReply'{terminationID = Ts}} <- Rs,
                             T <- Ts],
    event("subtract_reply", [{call, N}, {mg, Mg}, {context, Ctx},
                             {request, term_text(Term)},
                             {terminations, lists:join(",", Terms)}]).

%% Sends one transaction with one action; returns its action replies or
%% throws with the reason (error descriptor, timeout).
request(CH, Ctx, Cmds, What) ->
    AR = #'ActionRequest'{contextId = Ctx, commandRequests = Cmds},
    case megaco:call(CH, [AR], []) of
        {_Version, {ok, Replies}} ->
            lists:foreach(
              fun(#'ActionReply'{errorDescriptor = asn1_NOVALUE, commandReply = Rs}) ->
                      [throw({fail, What ++ " failed: " ++ ed_text(ED)})
                       || {_, #'AmmsReply'{terminationAudit = Audit}} <- Rs,
                          is_list(Audit),
                          {errorDescriptor, ED} <- Audit];
                 (#'ActionReply'{errorDescriptor = ED}) ->
                      throw({fail, What ++ " failed: " ++ ed_text(ED)})
              end, Replies),
            Replies;
        {_Version, {error, Reason}} ->
            throw({fail, io_lib:format("~s to ~s: ~s", [What, mid_text(element(3, CH)),
                                                       ed_text(Reason)])});
        Other ->
            throw({fail, io_lib:format("~s to ~s: ~0p", [What, mid_text(element(3, CH)),
                                                        Other])})
    end.

ed_text(#'ErrorDescriptor'{errorCode = C, errorText = T}) when is_list(T) ->
    io_lib:format("error ~b ~s", [C, T]);
ed_text(#'ErrorDescriptor'{errorCode = C}) ->
    io_lib:format("error ~b", [C]);
ed_text(timeout) -> "timeout (no reply)";
ed_text(Other) -> io_lib:format("~0p", [Other]).

cmd(Command) -> #'CommandRequest'{command = Command}.

media(Local, Remote) ->
    LRD = fun(undefined) -> asn1_NOVALUE;
             (Grps) -> #'LocalRemoteDescriptor'{propGrps = Grps}
          end,
    LCD = #'LocalControlDescriptor'{streamMode = sendRecv, propertyParms = []},
    {mediaDescriptor,
     #'MediaDescriptor'{streams = {oneStream,
                                   #'StreamParms'{localControlDescriptor = LCD,
                                                  localDescriptor = LRD(Local),
                                                  remoteDescriptor = LRD(Remote)}}}}.

prop(Name, Value) -> #'PropertyParm'{name = Name, value = [Value]}.

%% The Local property groups of a reply's media descriptor.
local_of(Audit) when is_list(Audit) ->
    Ls = [G || {mediaDescriptor, #'MediaDescriptor'{streams = S}} <- Audit,
               G <- stream_locals(S)],
    case Ls of
        [L | _] -> L;
        [] -> undefined
    end;
local_of(_) ->
    undefined.

stream_locals({oneStream, #'StreamParms'{localDescriptor = #'LocalRemoteDescriptor'{propGrps = G}}}) ->
    [G];
stream_locals({multiStream, Ds}) ->
    [G || {'StreamDescriptor', _, #'StreamParms'{localDescriptor =
                                                     #'LocalRemoteDescriptor'{propGrps = G}}} <- Ds];
stream_locals(_) ->
    [].

%% "IP:PORT" from the first property group's c= and m=audio lines.
sdp_addr([Grp | _]) ->
    Val = fun(Name) -> [V || #'PropertyParm'{name = Nm, value = [V | _]} <- Grp,
                             string:lowercase(Nm) =:= Name] end,
    case {Val("c"), Val("m")} of
        {[C | _], [M | _]} ->
            case {string:lexemes(C, " "), string:lexemes(M, " ")} of
                {[_, _, Ip | _], ["audio", P | _]} -> Ip ++ ":" ++ P;
                _ -> throw({fail, io_lib:format("bad SDP c=~s m=~s", [C, M])})
            end;
        _ ->
            throw({fail, io_lib:format("SDP without c= and m=: ~0p", [Grp])})
    end;
sdp_addr(Other) ->
    throw({fail, io_lib:format("empty SDP ~0p", [Other])}).

%%----------------------------------------------------------------------
%% megaco_user callbacks (run in megaco's processes)
%%----------------------------------------------------------------------

handle_connect(_CH, _PV, _Main) -> ok.
handle_connect(_CH, _PV, _Extra, _Main) -> ok.

handle_disconnect(CH, _PV, Reason, Main) ->
    Main ! {disconnect, CH, Reason},
    ok.

handle_syntax_error(_RH, _PV, _ED, _Main) -> reply.

handle_message_error(_CH, _PV, _ED, _Main) -> no_reply.

handle_trans_request(CH, PV, ARs, Main) ->
    case [{SC, Ctx} || #'ActionRequest'{contextId = Ctx, commandRequests = Cs} <- ARs,
                       #'CommandRequest'{command = {serviceChangeReq, SC}} <- Cs] of
        [{#'ServiceChangeRequest'{serviceChangeParms = P}, Ctx}] ->
            #'ServiceChangeParm'{serviceChangeMethod = Method,
                                 serviceChangeReason = Reason} = P,
            Main ! {servicechange, CH, Method, lists:join(" ", Reason)},
            Res = #'ServiceChangeResParm'{serviceChangeVersion = PV},
            Reply = #'ServiceChangeReply'{terminationID = [?ROOT],
                                          serviceChangeResult =
                                              {serviceChangeResParms, Res}},
            {discard_ack, [#'ActionReply'{contextId = Ctx,
                                          commandReply = [{serviceChangeReply, Reply}]}]};
        _ ->
            ED = #'ErrorDescriptor'{errorCode = 501,
                                    errorText = "Only ServiceChange is implemented"},
            {discard_ack, ED}
    end.

handle_trans_long_request(_CH, _PV, _Data, _Main) ->
    {discard_ack, #'ErrorDescriptor'{errorCode = 501}}.

handle_trans_reply(_CH, _PV, _Reply, _Data, _Main) -> ok.
handle_trans_ack(_CH, _PV, _Status, _Data, _Main) -> ok.
handle_unexpected_trans(_CH, _PV, _Trans, _Main) -> ok.
handle_trans_request_abort(_CH, _PV, _TransNo, _Pid, _Main) -> ok.
handle_segment_reply(_CH, _PV, _TransNo, _SegNo, _Compl, _Main) -> ok.

%%----------------------------------------------------------------------
%% Helpers shared in spirit with mg.escript (each escript stands alone)
%%----------------------------------------------------------------------

%% The MG's transport address as megaco sees it: the source of its first
%% message (megaco_udp's send handle).
peer(CH) ->
    case catch megaco:conn_info(CH, send_handle) of
        #send_handle{addr = A, port = P} -> addr(A, P);
        Other -> io_lib:format("~0p", [Other])
    end.

parse_args([], Acc) -> Acc;
parse_args(["--listen", V | T], Acc) -> parse_args(T, Acc#{listen => ip_port(V)});
parse_args(["--mid", V | T], Acc) -> parse_args(T, Acc#{mid => parse_mid(V)});
parse_args(["--calls", V | T], Acc) -> parse_args(T, Acc#{calls => int(V)});
parse_args(["--hold-ms", V | T], Acc) -> parse_args(T, Acc#{hold_ms => int(V)});
parse_args(["--encoding", V | T], Acc) -> parse_args(T, Acc#{encoding => encoding(V)});
parse_args(["--termination", V | T], Acc) -> parse_args(T, Acc#{termination => V});
parse_args(["--mg1-mid", V | T], Acc) -> parse_args(T, Acc#{mg1_mid => parse_mid(V)});
parse_args(["--mg2-mid", V | T], Acc) -> parse_args(T, Acc#{mg2_mid => parse_mid(V)});
parse_args(["--wait-ms", V | T], Acc) -> parse_args(T, Acc#{wait_ms => int(V)});
parse_args(["--request-ms", V | T], Acc) -> parse_args(T, Acc#{request_ms => int(V)});
parse_args(["--max-ms", V | T], Acc) -> parse_args(T, Acc#{max_ms => int(V)});
parse_args([A | _], _) -> throw({usage, "unknown or incomplete argument " ++ A}).

encoding("pretty") -> pretty;
encoding("compact") -> compact;
encoding(V) -> throw({usage, "--encoding pretty|compact, not " ++ V}).

encoder(pretty) -> megaco_pretty_text_encoder;
encoder(compact) -> megaco_compact_text_encoder.

int(V) ->
    try list_to_integer(V) of
        I when I >= 0 -> I;
        _ -> throw({usage, "negative number " ++ V})
    catch error:badarg -> throw({usage, "not a number: " ++ V})
    end.

ip_port(V) ->
    case string:split(V, ":", trailing) of
        [H, P] ->
            case inet:parse_ipv4_address(H) of
                {ok, Ip} -> {Ip, int(P)};
                _ -> throw({usage, "not an IPv4 address: " ++ H})
            end;
        _ -> throw({usage, "expected IP:PORT, not " ++ V})
    end.

%% "[IP]:PORT", "[IP]", "<name>:PORT", "<name>" or a device name.
parse_mid("[" ++ Rest) ->
    {IpText, After} = lists:splitwith(fun(C) -> C =/= $] end, Rest),
    {ok, Ip} = case inet:parse_ipv4_address(IpText) of
                   {ok, _} = Ok -> Ok;
                   _ -> throw({usage, "bad MID address " ++ IpText})
               end,
    {ip4Address, #'IP4Address'{address = tuple_to_list(Ip), portNumber = mid_port(After)}};
parse_mid("<" ++ Rest) ->
    {Name, After} = lists:splitwith(fun(C) -> C =/= $> end, Rest),
    {domainName, #'DomainName'{name = Name, portNumber = mid_port(After)}};
parse_mid(Name) ->
    {deviceName, Name}.

mid_port("]:" ++ P) -> int(P);
mid_port(">:" ++ P) -> int(P);
mid_port("]") -> asn1_NOVALUE;
mid_port(">") -> asn1_NOVALUE;
mid_port(Other) -> throw({usage, "bad MID ending " ++ Other}).

mid_text({ip4Address, #'IP4Address'{address = A, portNumber = P}}) ->
    "[" ++ inet:ntoa(list_to_tuple(A)) ++ "]" ++ port_suffix(P);
mid_text({domainName, #'DomainName'{name = N, portNumber = P}}) ->
    "<" ++ N ++ ">" ++ port_suffix(P);
mid_text({deviceName, N}) -> N;
mid_text(preliminary_mid) -> "preliminary_mid";
mid_text(Other) -> io_lib:format("~0p", [Other]).

port_suffix(asn1_NOVALUE) -> "";
port_suffix(P) -> ":" ++ integer_to_list(P).

term_id(Text) ->
    Levels = string:split(Text, "/", all),
    Wild = lists:any(fun(L) -> lists:member($$, L) orelse lists:member($*, L) end, Levels),
    #megaco_term_id{contains_wildcards = Wild, id = Levels}.

term_text(#megaco_term_id{id = Levels}) -> lists:join("/", Levels);
term_text(Other) -> io_lib:format("~0p", [Other]).

addr(Ip, Port) -> inet:ntoa(Ip) ++ ":" ++ integer_to_list(Port).

megaco_vsn() ->
    _ = application:load(megaco),
    case application:get_key(megaco, vsn) of
        {ok, V} -> V;
        _ -> "unknown"
    end.

event(Name, Fields) ->
    KVs = [[" ", atom_to_list(K), "=", value(V)] || {K, V} <- Fields],
    io:put_chars(standard_io, ["EVENT ", Name, KVs, "\n"]).

value(V) when is_integer(V) -> integer_to_list(V);
value(V) when is_atom(V) -> atom_to_list(V);
value(V) ->
    %% Values are single tokens: spaces would split them.
    [case C of $\s -> $_; $\n -> $_; $\r -> $_; $\t -> $_; _ -> C end
     || C <- lists:flatten(io_lib:format("~s", [V]))].

now_ms() -> erlang:monotonic_time(millisecond).

%% Ends the whole run after Ms, whatever it is waiting for.
watchdog(Ms) ->
    spawn(fun() ->
                  timer:sleep(Ms),
                  fail(4, io_lib:format("timeout: run exceeded --max-ms ~b", [Ms]))
          end).

fail(Code, Why) ->
    io:put_chars(standard_error, ["ERROR ", Why, "\n"]),
    halt(Code).
