%% An independent oracle for the H.323 ALG's aligned-PER walker: decodes
%% H.225.0 v6 and H.245 v13 PDUs with Erlang/OTP's asn1 (asn1ct, `per`),
%% lists every unicast IPv4/IPv6 transport address in encoding order, and
%% hashes the decoded value with those addresses masked.
%%
%% A filter: one request line in, one answer line out, in order.
%%
%%   request:  KIND HEX
%%     KIND  uuie  H323-UserInformation (the Q.931 User-user data after the
%%                 protocol discriminator)
%%           ras   RasMessage
%%           h245  MultimediaSystemControlMessage
%%           olc   OpenLogicalChannel (one fastStart element)
%%     HEX   the PER bytes, upper or lower case
%%   answer:   ok NORM REENC ADDR*
%%           | err REASON (one line)
%%     NORM  32 hex digits: MD5 of the decoded value (nested PDUs decoded in
%%           place) with the ip and port of every reported address set to
%%           zero, so NORM(a) == NORM(b) exactly when a and b decode to
%%           values that differ in nothing but those addresses
%%     REENC `same` when re-encoding every decoded value (the PDU and each
%%           nested PDU) gives back its bytes, else `differs:WHERE,...`
%%           (`differs:.` for the PDU itself); information, not an error
%%     ADDR  PATH=IP:PORT, IPv6 as [IP]:PORT. PATH is the dotted chain of
%%           ASN.1 identifiers (SEQUENCE components and CHOICE alternatives)
%%           from the PDU down to the component whose type is the
%%           TransportAddress; an element of a SEQUENCE OF is FIELD[I]. The
%%           TransportAddress's own alternatives (ipAddress, ip6Address;
%%           unicastAddress.iPAddress, unicastAddress.iP6Address) are not in
%%           the PATH, so its last identifier (without [I]) is the field,
%%           e.g. h245Address, mediaChannel, callSignalAddress, transportID.
%%
%% Nested PDUs, decoded and walked in place, wherever the field occurs:
%% fastStart elements (OpenLogicalChannel), h245Control and
%% parallelH245Control elements (MultimediaSystemControlMessage). One that
%% fails to decode makes the answer `err nested PATH: REASON`.
%%
%% The walk is generic: records are recognised by the field lists in the
%% generated .hrl files, a 2-tuple {atom, Value} that is no record is a
%% CHOICE, and only the address records below are special.
-module(h323_oracle).
-export([main/0, inspect/2, records/0]).

-define(H225, 'H323-MESSAGES').
-define(H245, 'MULTIMEDIA-SYSTEM-CONTROL').

%% The address records: name, arity, family, fields of ip and port (as
%% element positions of the record tuple).
address('TransportAddress_ipAddress', 3) -> {v4, 2, 3};
address('TransportAddress_ip6Address', 3) -> {v6, 2, 3};
address('UnicastAddress_iPAddress', 3) -> {v4, 2, 3};
address('UnicastAddress_iP6Address', 3) -> {v6, 2, 3};
address(_, _) -> none.

%% The CHOICE alternatives inside TransportAddress, left out of a PATH.
is_address_alternative(ipAddress) -> true;
is_address_alternative(ip6Address) -> true;
is_address_alternative(unicastAddress) -> true;
is_address_alternative(iPAddress) -> true;
is_address_alternative(iP6Address) -> true;
is_address_alternative(_) -> false.

%% Fields whose elements are whole PDUs in an OCTET STRING.
nested(fastStart) -> {?H245, 'OpenLogicalChannel'};
nested(h245Control) -> {?H245, 'MultimediaSystemControlMessage'};
nested(parallelH245Control) -> {?H245, 'MultimediaSystemControlMessage'};
nested(_) -> none.

kind(<<"uuie">>) -> {?H225, 'H323-UserInformation'};
kind(<<"ras">>) -> {?H225, 'RasMessage'};
kind(<<"h245">>) -> {?H245, 'MultimediaSystemControlMessage'};
kind(<<"olc">>) -> {?H245, 'OpenLogicalChannel'};
kind(_) -> none.

%% ---------------------------------------------------------------- the loop

main() ->
    Records = records(),
    persistent_term:put({?MODULE, records}, Records),
    Port = open_port({fd, 0, 1}, [binary, {line, 1 bsl 20}, eof]),
    port_command(Port, ["ready ", erlang:system_info(otp_release), $\n]),
    loop(Port, []).

loop(Port, Partial) ->
    receive
        {Port, {data, {noeol, Chunk}}} ->
            loop(Port, [Partial | Chunk]);
        {Port, {data, {eol, Chunk}}} ->
            Line = iolist_to_binary([Partial | Chunk]),
            Answer = try answer(Line)
                     catch Class:Reason:Stack ->
                             ["err internal ", one_line(term({Class, Reason, Stack}))]
                     end,
            port_command(Port, [Answer, $\n]),
            loop(Port, []);
        {Port, eof} ->
            halt(0)
    end.

answer(Line0) ->
    Line = string:trim(Line0),
    case binary:split(Line, <<" ">>) of
        [Kind, Hex] ->
            case {kind(Kind), catch binary:decode_hex(string:trim(Hex))} of
                {none, _} -> ["err unknown kind ", one_line(Kind)];
                {_, Bytes} when is_binary(Bytes) -> format(inspect(Kind, Bytes));
                _ -> "err bad hex"
            end;
        [<<"ping">>] -> "pong";
        _ -> "err expected: KIND HEX"
    end.

format({ok, Norm, Reenc, Addrs}) ->
    ["ok ", Norm, $\s, reenc(Reenc), [[$\s, A] || A <- Addrs]];
format({error, Reason}) ->
    ["err ", one_line(Reason)].

reenc([]) -> "same";
reenc(Where) -> ["differs:", lists:join($,, Where)].

%% ---------------------------------------------------------------- inspect

%% inspect(Kind, Bytes) -> {ok, NormHex, [DiffersWhere], [AddrText]}
%%                       | {error, Text}
inspect(Kind, Bytes) ->
    {Module, Type} = kind(Kind),
    case decode(Module, Type, Bytes) of
        {ok, Value} ->
            try walk(Value, [], {[], []}) of
                {Norm, {Addrs, Differs0}} ->
                    Differs = case reencodes(Module, Type, Value, Bytes) of
                                  true -> Differs0;
                                  false -> [<<".">> | Differs0]
                              end,
                    Hash = erlang:md5(term_to_binary({Type, Norm}, [deterministic])),
                    {ok, binary:encode_hex(Hash), lists:reverse(Differs),
                     lists:reverse(Addrs)}
            catch
                throw:{nested, Path, Reason} ->
                    {error, ["nested ", Path, ": ", Reason]}
            end;
        {error, Reason} ->
            {error, Reason}
    end.

decode(Module, Type, Bytes) ->
    case catch Module:decode(Type, Bytes) of
        %% The rest is what follows the value's last bit: up to 7 bits that
        %% pad it to a whole octet (X.691 10.1.3) are no error.
        {ok, Value, Rest} when bit_size(Rest) < 8 -> {ok, Value};
        {ok, _, Rest} -> {error, io_lib:format("~b bits after the value", [bit_size(Rest)])};
        {error, {asn1, {Reason, Stack}}} when is_list(Stack) -> {error, term(Reason)};
        {error, Reason} -> {error, term(Reason)};
        Other -> {error, term(Other)}
    end.

reencodes(Module, Type, Value, Bytes) ->
    case catch Module:encode(Type, Value) of
        {ok, Encoded} -> iolist_to_binary(Encoded) =:= Bytes;
        _ -> false
    end.

%% ---------------------------------------------------------------- the walk

%% walk(Term, RevPath, {RevAddrs, RevDiffers}) -> {NormTerm, Acc}
walk(T, Path, Acc) when is_tuple(T), tuple_size(T) > 0, is_atom(element(1, T)) ->
    Name = element(1, T),
    case address(Name, tuple_size(T)) of
        {Family, IpPos, PortPos} ->
            found(T, Family, IpPos, PortPos, Path, Acc);
        none ->
            case records_of(Name, tuple_size(T) - 1) of
                {ok, Fields} ->
                    {Values, Acc1} = fields(Fields, tl(tuple_to_list(T)), Path, Acc, []),
                    {list_to_tuple([Name | Values]), Acc1};
                error when tuple_size(T) =:= 2 ->
                    %% A CHOICE: {Alternative, Value}.
                    {V, Acc1} = walk(element(2, T), [Name | Path], Acc),
                    {{Name, V}, Acc1};
                error ->
                    elements(T, Path, Acc)
            end
    end;
walk(T, Path, Acc) when is_tuple(T) ->
    elements(T, Path, Acc);
walk(T, Path, Acc) when is_list(T) ->
    case lists:all(fun erlang:is_integer/1, T) of
        true -> {T, Acc}; % a character string
        false -> list(T, Path, 0, Acc, [])
    end;
walk(T, _Path, Acc) ->
    {T, Acc}.

elements(T, Path, Acc) ->
    {Values, Acc1} = lists:mapfoldl(fun(E, A) -> walk(E, Path, A) end, Acc,
                                    tuple_to_list(T)),
    {list_to_tuple(Values), Acc1}.

list([], _Path, _I, Acc, Out) ->
    {lists:reverse(Out), Acc};
list([E | Es], Path, I, Acc, Out) ->
    {V, Acc1} = walk(E, indexed(Path, I), Acc),
    list(Es, Path, I + 1, Acc1, [V | Out]).

indexed([], I) -> [io_lib:format("[~b]", [I])];
indexed([Last | Up], I) -> [[name(Last), io_lib:format("[~b]", [I])] | Up].

fields([], [], _Path, Acc, Out) ->
    {lists:reverse(Out), Acc};
fields([F | Fs], [V | Vs], Path, Acc, Out) ->
    {V1, Acc1} = case nested(F) of
                     {Module, Type} when is_list(V) ->
                         nested_list(Module, Type, V, [F | Path], 0, Acc, []);
                     _ ->
                         walk(V, [F | Path], Acc)
                 end,
    fields(Fs, Vs, Path, Acc1, [V1 | Out]).

nested_list(_Module, _Type, [], _Path, _I, Acc, Out) ->
    {lists:reverse(Out), Acc};
nested_list(Module, Type, [Bytes | Rest], Path, I, Acc, Out) when is_binary(Bytes) ->
    Here = indexed(Path, I),
    case decode(Module, Type, Bytes) of
        {ok, Value} ->
            {Norm, {Addrs, Differs}} = walk(Value, Here, Acc),
            Differs1 = case reencodes(Module, Type, Value, Bytes) of
                           true -> Differs;
                           false -> [path(Here) | Differs]
                       end,
            nested_list(Module, Type, Rest, Path, I + 1, {Addrs, Differs1},
                        [{'$nested', Type, Norm} | Out]);
        {error, Reason} ->
            throw({nested, path(Here), Reason})
    end.

found(T, Family, IpPos, PortPos, Path, {Addrs, Differs}) ->
    Ip = element(IpPos, T),
    Port = element(PortPos, T),
    Text = [path(lists:dropwhile(fun is_address_alternative/1, Path)), $=,
            ip_port(Family, Ip, Port)],
    Masked = setelement(PortPos, setelement(IpPos, T, mask(Ip)), 0),
    {Masked, {[Text | Addrs], Differs}}.

mask(Ip) when is_binary(Ip) -> <<0:(bit_size(Ip))>>;
mask(_) -> masked.

ip_port(v4, <<A, B, C, D>>, Port) ->
    io_lib:format("~b.~b.~b.~b:~b", [A, B, C, D, Port]);
ip_port(v6, <<_:128>> = Ip, Port) ->
    Words = list_to_tuple([W || <<W:16>> <= Ip]),
    ["[", inet:ntoa(Words), "]:", integer_to_list(Port)];
ip_port(_, Ip, Port) ->
    %% Cannot happen with the size constraints; still reported, visibly.
    io_lib:format("?~0p:~0p", [Ip, Port]).

path(RevPath) ->
    lists:join($., [name(P) || P <- lists:reverse(RevPath)]).

name(A) when is_atom(A) -> atom_to_list(A);
name(S) -> S.

%% ---------------------------------------------------------------- records

%% The record table: #{{Name, Arity} => [Field]} from the generated .hrl
%% files beside the compiled codec.
records() ->
    Dir = filename:dirname(code:which(?H225)),
    Hrls = [filename:join(Dir, M ++ ".hrl")
            || M <- ["H323-MESSAGES", "H235-SECURITY-MESSAGES", "MULTIMEDIA-SYSTEM-CONTROL"]],
    maps:from_list(
      [{{Name, length(Fields)}, [field_name(F) || F <- Fields]}
       || Hrl <- Hrls,
          {ok, Forms} <- [epp:parse_file(Hrl, [])],
          {attribute, _, record, {Name, Fields}} <- Forms]).

field_name({record_field, _, {atom, _, F}}) -> F;
field_name({record_field, _, {atom, _, F}, _Default}) -> F;
field_name({typed_record_field, Field, _Type}) -> field_name(Field).

records_of(Name, Arity) ->
    maps:find({Name, Arity}, persistent_term:get({?MODULE, records})).

%% ---------------------------------------------------------------- text

term(T) -> io_lib:format("~0tP", [T, 12]).

one_line(Text) ->
    Flat = case unicode:characters_to_binary(Text) of
               B when is_binary(B) -> B;
               _ -> <<"(not UTF-8)">>
           end,
    Short = case byte_size(Flat) > 400 of
                true -> <<(binary:part(Flat, 0, 400))/binary, "...">>;
                false -> Flat
            end,
    binary:replace(Short, [<<"\n">>, <<"\r">>], <<" ">>, [global]).
