#!/usr/bin/env escript
%% -*- erlang -*-
%%! -noshell +sbwt none +sbwtdcpu none +sbwtdio none
%%
%% A media gateway (MG) built on Erlang/OTP's megaco application: a real
%% H.248 stack that nobody in this project wrote. Written for Pinhole's
%% tests (docs/megaco.md); run by tests/src/megaco.rs.
%%
%% It binds its signalling socket (--local) and its RTP socket
%% (--rtp-ip:--rtp-port) at start, sends ServiceChange Restart to the MGC
%% (--mgc) and then answers:
%%
%%   Add      in context $ -> a new context, termination $ -> rtp/N; the
%%            reply's Local names --sdp-ip (default --rtp-ip) and
%%            --rtp-port in place of CHOOSE. A Remote in the Add starts
%%            the RTP.
%%   Modify   a Remote starts the RTP (if not started yet).
%%   Subtract by name or with * (every termination of the context): stops
%%            the RTP and, --drain-ms later, prints the call's RESULT line.
%%
%% RTP: --packets packets, one every --interval-ms, each a 12-byte RTP
%% header (version 2, payload type 0, sequence numbers from 1, timestamps
%% in steps of 160, a fixed SSRC) and 160 bytes of PCMU silence, sent from
%% the RTP socket to the Remote's c=/m= address. Every datagram arriving on
%% the RTP socket while a call is up is counted (valid RTP version 2 and
%% not), with its source.
%%
%% Output on stdout: "EVENT name key=value ..." per step and one
%%   RESULT call=K context=C termination=T rtp_sent=N rtp_received=M
%%          rtp_bad=B remote=IP:PORT from=IP:PORT[,IP:PORT...] subtracted=true
%% per call. Exits 0 after --calls calls were subtracted; on a timeout
%% (--max-ms) it prints the RESULT of an unfinished call with
%% subtracted=false, "ERROR reason" on stderr and exits non-zero.
%%
%% Usage: mg.escript --mgc IP:PORT --local IP:PORT --mid MID
%%          --rtp-ip IP --rtp-port PORT [--sdp-ip IP] [--packets N]
%%          [--interval-ms MS] [--calls N] [--encoding pretty|compact]
%%          [--mgc-mid MID] [--drain-ms MS] [--request-ms MS] [--max-ms MS]
%%
%% MIDs are written as in H.248 text: [IP]:PORT, <domain.name>:PORT,
%% <domain.name>, or a bare device name. Without --mgc-mid the MG connects
%% with megaco's preliminary_mid and learns the MGC's MID from its reply.

-module(pinhole_megaco_mg).
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
-record('MediaDescriptor', {termStateDescr = asn1_NOVALUE,
                            streams = asn1_NOVALUE}).
-record('StreamParms', {localControlDescriptor = asn1_NOVALUE,
                        localDescriptor = asn1_NOVALUE,
                        remoteDescriptor = asn1_NOVALUE}).
-record('LocalRemoteDescriptor', {propGrps = []}).
-record('PropertyParm', {name, value, extraInfo = asn1_NOVALUE}).
-record('IP4Address', {address, portNumber = asn1_NOVALUE}).
-record('DomainName', {name, portNumber = asn1_NOVALUE}).
-record(megaco_conn_handle, {local_mid, remote_mid}).

-define(CHOOSE_CTX, 16#FFFFFFFE).
-define(ALL_CTX, 16#FFFFFFFF).
-define(NULL_CTX, 0).
-define(ROOT, #megaco_term_id{id = ["root"]}).
-define(SSRC, 16#50480000).

-define(DEFAULTS, #{packets => 50, interval_ms => 20, calls => 1,
                    encoding => pretty, mgc_mid => preliminary_mid,
                    sdp_ip => undefined, drain_ms => 100,
                    request_ms => 3000, max_ms => 25000}).

%% One call: a context with one termination.
-record(call, {n, ctx, term, remote = undefined, sent = 0, received = 0,
               bad = 0, from = [], seq = 1, sending = false,
               subtracted = false}).

%%----------------------------------------------------------------------
%% main
%%----------------------------------------------------------------------

main(Args) ->
    Opts = try parse_args(Args, ?DEFAULTS)
           catch throw:{usage, Usage} -> fail(2, "usage: " ++ Usage)
           end,
    [case maps:is_key(K, Opts) of
         true -> ok;
         false -> fail(2, "usage: --" ++ string:replace(atom_to_list(K), "_", "-")
                       ++ " is required")
     end || K <- [mgc, local, mid, rtp_ip, rtp_port]],
    Deadline = now_ms() + maps:get(max_ms, Opts),
    try run(Opts, Deadline) of
        ok -> timer:sleep(50), halt(0)
    catch
        throw:{fail, Why} -> fail(1, Why);
        C:E:St -> fail(1, io_lib:format("~p:~p ~p", [C, E, St]))
    end.

run(Opts, Deadline) ->
    Mid = maps:get(mid, Opts),
    {LIp, LPort} = maps:get(local, Opts),
    {MgcIp, MgcPort} = maps:get(mgc, Opts),
    RtpIp = maps:get(rtp_ip, Opts),
    RtpPort = maps:get(rtp_port, Opts),
    Rtp = case gen_udp:open(RtpPort, [binary, {ip, RtpIp}, {active, true}]) of
              {ok, S} -> S;
              {error, E} -> throw({fail, io_lib:format("cannot bind RTP ~s: ~p",
                                                       [addr(RtpIp, RtpPort), E])})
          end,
    ok = application:start(megaco),
    ok = megaco:start_user(Mid, [{user_mod, ?MODULE}, {user_args, [self()]}]),
    RequestMs = maps:get(request_ms, Opts),
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
    {Handle, ControlPid} =
        case megaco_udp:open(Sup, [{port, LPort}, {udp_options, [{ip, LIp}]},
                                  {receive_handle, RH}]) of
            {ok, H, C} -> {H, C};
            Err -> throw({fail, io_lib:format("cannot bind signalling ~s: ~p",
                                              [addr(LIp, LPort), Err])})
        end,
    SH = megaco_udp:create_send_handle(Handle, MgcIp, MgcPort),
    {ok, CH} = megaco:connect(RH, maps:get(mgc_mid, Opts), SH, ControlPid),
    event("started", [{local, addr(LIp, LPort)}, {mid, mid_text(Mid)},
                      {mgc, addr(MgcIp, MgcPort)}, {rtp, addr(RtpIp, RtpPort)},
                      {megaco, megaco_vsn()}]),
    service_change(CH),
    Sdp = case maps:get(sdp_ip, Opts) of
              undefined -> RtpIp;
              Ip -> Ip
          end,
    State = #{opts => Opts, rtp => Rtp, sdp => {Sdp, RtpPort}, calls => #{},
              next_call => 1, next_ctx => 1, done => 0, stray => 0},
    loop(State, Deadline).

service_change(CH) ->
    Parm = #'ServiceChangeParm'{serviceChangeMethod = restart,
                                serviceChangeReason = ["901"]},
    Req = #'ServiceChangeRequest'{terminationID = [?ROOT], serviceChangeParms = Parm},
    AR = #'ActionRequest'{contextId = ?NULL_CTX,
                          commandRequests = [#'CommandRequest'{command =
                                                                   {serviceChangeReq, Req}}]},
    case megaco:call(CH, [AR], []) of
        {Version, {ok, [#'ActionReply'{commandReply = [{serviceChangeReply, R}]}]}} ->
            #'ServiceChangeReply'{serviceChangeResult = Res} = R,
            case Res of
                {errorDescriptor, ED} ->
                    throw({fail, "ServiceChange refused: " ++ ed_text(ED)});
                _ -> ok
            end,
            event("registered", [{version, Version}]);
        {_, {error, Reason}} ->
            throw({fail, "ServiceChange to the MGC: " ++ ed_text(Reason)});
        Other ->
            throw({fail, io_lib:format("ServiceChange to the MGC: ~0p", [Other])})
    end.

%%----------------------------------------------------------------------
%% The main loop: requests from the callbacks, RTP ticks and datagrams.
%%----------------------------------------------------------------------

loop(#{done := Done, opts := #{calls := Calls}}, _Deadline) when Done >= Calls ->
    event("done", [{calls, Done}]),
    ok;
loop(State, Deadline) ->
    Left = max(0, Deadline - now_ms()),
    receive
        {request, From, Ref, CH, ARs} ->
            {Reply, State2} = handle_actions(ARs, State),
            From ! {Ref, Reply},
            _ = CH,
            loop(State2, Deadline);
        {tick, N} ->
            loop(tick(N, State), Deadline);
        {finish, N} ->
            loop(finish(N, State), Deadline);
        {udp, _Sock, Ip, Port, Data} ->
            loop(count(Ip, Port, Data, State), Deadline);
        {disconnect, Why} ->
            event("disconnect", [{reason, io_lib:format("~0p", [Why])}]),
            loop(State, Deadline)
    after Left ->
        #{calls := Cs} = State,
        [result(C) || C <- maps:values(Cs)],
        throw({fail, io_lib:format("timeout: ~b of ~b calls subtracted within --max-ms ~b",
                                   [maps:get(done, State),
                                    maps:get(calls, maps:get(opts, State)),
                                    maps:get(max_ms, maps:get(opts, State))])})
    end.

%% Answers one transaction's actions: {discard_ack, Replies | ED}.
handle_actions(ARs, State) ->
    {Replies, State2} = lists:mapfoldl(fun action/2, State, ARs),
    {{discard_ack, Replies}, State2}.

action(#'ActionRequest'{contextId = Ctx0, commandRequests = Cmds}, State) ->
    try
        {Ctx, State1} = case Ctx0 of
                            ?CHOOSE_CTX ->
                                C = maps:get(next_ctx, State),
                                {C, State#{next_ctx := C + 1}};
                            _ -> {Ctx0, State}
                        end,
        {CmdReplies, State2} =
            lists:mapfoldl(fun(#'CommandRequest'{command = Cmd}, S) ->
                                   command(Ctx, Cmd, S)
                           end, State1, Cmds),
        {#'ActionReply'{contextId = Ctx, commandReply = lists:append(CmdReplies)}, State2}
    catch
        throw:{error, Code, Text} ->
            event("error_reply", [{context, Ctx0}, {code, Code}, {text, Text}]),
            {#'ActionReply'{contextId = Ctx0,
                            errorDescriptor = #'ErrorDescriptor'{errorCode = Code,
                                                                 errorText = Text}},
             State}
    end.

command(Ctx, {addReq, #'AmmRequest'{terminationID = [Tid], descriptors = Ds}}, State) ->
    N = maps:get(next_call, State),
    Term = case Tid of
               #megaco_term_id{contains_wildcards = true} ->
                   #megaco_term_id{id = ["rtp", integer_to_list(N)]};
               _ -> Tid
           end,
    Remote = remote_of(Ds),
    Call = #call{n = N, ctx = Ctx, term = Term},
    event("add", [{call, N}, {context, Ctx}, {termination, term_text(Term)},
                  {remote, addr_text(Remote)}]),
    State2 = State#{next_call := N + 1,
                    calls := maps:put(N, Call, maps:get(calls, State))},
    State3 = set_remote(N, Remote, State2),
    {Ip, Port} = maps:get(sdp, State),
    Local = [[prop("v", "0"),
              prop("o", "- " ++ integer_to_list(N) ++ " 1 IN IP4 " ++ inet:ntoa(Ip)),
              prop("s", "-"),
              prop("c", "IN IP4 " ++ inet:ntoa(Ip)),
              prop("t", "0 0"),
              prop("m", "audio " ++ integer_to_list(Port) ++ " RTP/AVP 0")]],
    Media = {mediaDescriptor,
             #'MediaDescriptor'{streams = {oneStream,
                                           #'StreamParms'{localDescriptor =
                                                              #'LocalRemoteDescriptor'{propGrps = Local}}}}},
    {[{addReply, #'AmmsReply'{terminationID = [Term], terminationAudit = [Media]}}], State3};
command(Ctx, {modReq, #'AmmRequest'{terminationID = [Tid], descriptors = Ds}}, State) ->
    [N | _] = case find_calls(Ctx, Tid, State) of
                  [] -> throw({error, 430, "Unknown TerminationID"});
                  Ns -> Ns
              end,
    Remote = remote_of(Ds),
    Call = maps:get(N, maps:get(calls, State)),
    event("modify", [{call, N}, {context, Ctx}, {termination, term_text(Call#call.term)},
                     {remote, addr_text(Remote)}]),
    {[{modReply, #'AmmsReply'{terminationID = [Call#call.term]}}],
     set_remote(N, Remote, State)};
command(Ctx, {subtractReq, #'SubtractRequest'{terminationID = [Tid]}}, State) ->
    Ns = case find_calls(Ctx, Tid, State) of
             [] -> throw({error, 430, "Unknown TerminationID"});
             Found -> Found
         end,
    #{calls := Calls, opts := #{drain_ms := Drain}} = State,
    {Replies, Calls2} =
        lists:mapfoldl(
          fun(N, Cs) ->
                  C = maps:get(N, Cs),
                  event("subtract", [{call, N}, {context, Ctx},
                                     {termination, term_text(C#call.term)},
                                     {request, term_text(Tid)}]),
                  erlang:send_after(Drain, self(), {finish, N}),
                  {{subtractReply, #'AmmsReply'{terminationID = [C#call.term]}},
                   Cs#{N := C#call{subtracted = true, sending = false}}}
          end, Calls, Ns),
    {Replies, State#{calls := Calls2}};
command(_Ctx, Other, _State) ->
    throw({error, 501, "Not implemented: " ++ atom_to_list(element(1, Other))}).

%% The calls in context Ctx matching Tid (a name, or * for all).
find_calls(Ctx, Tid, #{calls := Calls}) ->
    [N || {N, #call{ctx = C, term = T, subtracted = false}} <- lists:sort(maps:to_list(Calls)),
          C =:= Ctx orelse Ctx =:= ?ALL_CTX,
          matches(Tid, T)].

matches(#megaco_term_id{id = ["*"]}, _) -> true;
matches(#megaco_term_id{id = Id}, #megaco_term_id{id = Id}) -> true;
matches(_, _) -> false.

set_remote(_N, undefined, State) ->
    State;
set_remote(N, Remote, #{calls := Calls} = State) ->
    C = maps:get(N, Calls),
    Start = not C#call.sending andalso C#call.sent =:= 0,
    C2 = C#call{remote = Remote, sending = C#call.sending orelse Start},
    Start andalso (self() ! {tick, N}),
    State#{calls := Calls#{N := C2}}.

%% Sends the next RTP packet of call N and schedules the one after.
tick(N, #{calls := Calls, rtp := Sock, opts := Opts} = State) ->
    case maps:find(N, Calls) of
        {ok, #call{sending = true, remote = {Ip, Port}, seq = Seq, sent = Sent} = C} ->
            Total = maps:get(packets, Opts),
            Header = <<2:2, 0:1, 0:1, 0:4, 0:1, 0:7, Seq:16, (Seq * 160):32,
                       (?SSRC + N):32>>,
            Payload = binary:copy(<<16#ff>>, 160),
            C2 = case gen_udp:send(Sock, Ip, Port, [Header, Payload]) of
                     ok -> C#call{sent = Sent + 1, seq = Seq + 1};
                     {error, _} -> C#call{seq = Seq + 1}
                 end,
            Sending = Seq < Total,
            Sending andalso erlang:send_after(maps:get(interval_ms, Opts), self(), {tick, N}),
            State#{calls := Calls#{N := C2#call{sending = Sending}}};
        _ ->
            State
    end.

%% Counts a datagram on the RTP socket against the call that is up.
count(Ip, Port, Data, #{calls := Calls} = State) ->
    %% Calls are one after another: the newest is the one up (or
    %% draining after its Subtract).
    case lists:reverse(lists:sort(maps:keys(Calls))) of
        [] ->
            State#{stray := maps:get(stray, State) + 1};
        [N | _] ->
            C = maps:get(N, Calls),
            From = addr(Ip, Port),
            C2 = case Data of
                     <<2:2, _:14, _/binary>> when byte_size(Data) >= 12 ->
                         C#call{received = C#call.received + 1};
                     _ ->
                         C#call{bad = C#call.bad + 1}
                 end,
            C3 = case lists:member(From, C2#call.from) of
                     true -> C2;
                     false -> C2#call{from = C2#call.from ++ [From]}
                 end,
            State#{calls := Calls#{N := C3}}
    end.

finish(N, #{calls := Calls} = State) ->
    result(maps:get(N, Calls)),
    State#{done := maps:get(done, State) + 1}.

result(#call{n = N, ctx = Ctx, term = T, sent = S, received = R, bad = B,
             remote = Remote, from = From, subtracted = Sub}) ->
    io:put_chars(standard_io,
                 ["RESULT call=", integer_to_list(N),
                  " context=", integer_to_list(Ctx),
                  " termination=", term_text(T),
                  " rtp_sent=", integer_to_list(S),
                  " rtp_received=", integer_to_list(R),
                  " rtp_bad=", integer_to_list(B),
                  " remote=", addr_text(Remote),
                  " from=", lists:join(",", From),
                  " subtracted=", atom_to_list(Sub), "\n"]).

%% The Remote's audio address: c= IP and m=audio port of the first group.
remote_of(Ds) ->
    Grps = [G || {mediaDescriptor, #'MediaDescriptor'{streams = {oneStream, SP}}} <- Ds,
                 #'StreamParms'{remoteDescriptor = #'LocalRemoteDescriptor'{propGrps = [G | _]}} <- [SP]],
    case Grps of
        [] -> undefined;
        [G | _] ->
            Val = fun(Name) -> [V || #'PropertyParm'{name = Nm, value = [V | _]} <- G,
                                     string:lowercase(Nm) =:= Name] end,
            case {Val("c"), Val("m")} of
                {[C | _], [M | _]} ->
                    case {string:lexemes(C, " "), string:lexemes(M, " ")} of
                        {[_, _, IpText | _], ["audio", P | _]} ->
                            case {inet:parse_ipv4_address(IpText), string:to_integer(P)} of
                                {{ok, Ip}, {Port, ""}} -> {Ip, Port};
                                _ -> throw({error, 449, "Unusable Remote address"})
                            end;
                        _ -> throw({error, 449, "Unusable Remote c=/m="})
                    end;
                _ -> throw({error, 441, "Remote without c= and m="})
            end
    end.

prop(Name, Value) -> #'PropertyParm'{name = Name, value = [Value]}.

%%----------------------------------------------------------------------
%% megaco_user callbacks (run in megaco's processes)
%%----------------------------------------------------------------------

handle_connect(_CH, _PV, _Main) -> ok.
handle_connect(_CH, _PV, _Extra, _Main) -> ok.

handle_disconnect(_CH, _PV, Reason, Main) ->
    Main ! {disconnect, Reason},
    ok.

handle_syntax_error(_RH, _PV, _ED, _Main) -> reply.

handle_message_error(_CH, _PV, _ED, _Main) -> no_reply.

%% The main process owns the state: ask it, bounded.
handle_trans_request(#megaco_conn_handle{} = CH, _PV, ARs, Main) ->
    Ref = make_ref(),
    Main ! {request, self(), Ref, CH, ARs},
    receive
        {Ref, Reply} -> Reply
    after 2000 ->
        {discard_ack, #'ErrorDescriptor'{errorCode = 500,
                                         errorText = "MG main loop did not answer"}}
    end.

handle_trans_long_request(_CH, _PV, _Data, _Main) ->
    {discard_ack, #'ErrorDescriptor'{errorCode = 501}}.

handle_trans_reply(_CH, _PV, _Reply, _Data, _Main) -> ok.
handle_trans_ack(_CH, _PV, _Status, _Data, _Main) -> ok.
handle_unexpected_trans(_CH, _PV, _Trans, _Main) -> ok.
handle_trans_request_abort(_CH, _PV, _TransNo, _Pid, _Main) -> ok.
handle_segment_reply(_CH, _PV, _TransNo, _SegNo, _Compl, _Main) -> ok.

%%----------------------------------------------------------------------
%% Helpers (each escript stands alone)
%%----------------------------------------------------------------------

parse_args([], Acc) -> Acc;
parse_args(["--mgc", V | T], Acc) -> parse_args(T, Acc#{mgc => ip_port(V)});
parse_args(["--local", V | T], Acc) -> parse_args(T, Acc#{local => ip_port(V)});
parse_args(["--mid", V | T], Acc) -> parse_args(T, Acc#{mid => parse_mid(V)});
parse_args(["--mgc-mid", V | T], Acc) -> parse_args(T, Acc#{mgc_mid => parse_mid(V)});
parse_args(["--rtp-ip", V | T], Acc) -> parse_args(T, Acc#{rtp_ip => ip(V)});
parse_args(["--rtp-port", V | T], Acc) -> parse_args(T, Acc#{rtp_port => int(V)});
parse_args(["--sdp-ip", V | T], Acc) -> parse_args(T, Acc#{sdp_ip => ip(V)});
parse_args(["--packets", V | T], Acc) -> parse_args(T, Acc#{packets => int(V)});
parse_args(["--interval-ms", V | T], Acc) -> parse_args(T, Acc#{interval_ms => int(V)});
parse_args(["--calls", V | T], Acc) -> parse_args(T, Acc#{calls => int(V)});
parse_args(["--encoding", V | T], Acc) -> parse_args(T, Acc#{encoding => encoding(V)});
parse_args(["--drain-ms", V | T], Acc) -> parse_args(T, Acc#{drain_ms => int(V)});
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

ip(V) ->
    case inet:parse_ipv4_address(V) of
        {ok, Ip} -> Ip;
        _ -> throw({usage, "not an IPv4 address: " ++ V})
    end.

ip_port(V) ->
    case string:split(V, ":", trailing) of
        [H, P] -> {ip(H), int(P)};
        _ -> throw({usage, "expected IP:PORT, not " ++ V})
    end.

%% "[IP]:PORT", "[IP]", "<name>:PORT", "<name>" or a device name.
parse_mid("[" ++ Rest) ->
    {IpText, After} = lists:splitwith(fun(C) -> C =/= $] end, Rest),
    Ip = ip(IpText),
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
mid_text(Other) -> io_lib:format("~0p", [Other]).

port_suffix(asn1_NOVALUE) -> "";
port_suffix(P) -> ":" ++ integer_to_list(P).

ed_text(#'ErrorDescriptor'{errorCode = C, errorText = T}) when is_list(T) ->
    io_lib:format("error ~b ~s", [C, T]);
ed_text(#'ErrorDescriptor'{errorCode = C}) ->
    io_lib:format("error ~b", [C]);
ed_text(timeout) -> "timeout (no reply)";
ed_text(Other) -> io_lib:format("~0p", [Other]).

term_text(#megaco_term_id{id = Levels}) -> lists:join("/", Levels);
term_text(Other) -> io_lib:format("~0p", [Other]).

addr(Ip, Port) -> inet:ntoa(Ip) ++ ":" ++ integer_to_list(Port).

addr_text(undefined) -> "none";
addr_text({Ip, Port}) -> addr(Ip, Port).

megaco_vsn() ->
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
    [case C of $\s -> $_; $\n -> $_; $\r -> $_; $\t -> $_; _ -> C end
     || C <- lists:flatten(io_lib:format("~s", [V]))].

now_ms() -> erlang:monotonic_time(millisecond).

fail(Code, Why) ->
    io:put_chars(standard_error, ["ERROR ", Why, "\n"]),
    halt(Code).
