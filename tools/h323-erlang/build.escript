#!/usr/bin/env escript
%% -*- erlang -*-
%%! -noshell
%%
%% Compiles the H.225.0 v6, H.235 and H.245 v13 ASN.1 modules to an
%% aligned-PER codec (asn1ct, option `per`) and the oracle filter beside
%% this script, all into OUTDIR.
%%
%%   escript build.escript ASN1DIR OUTDIR
%%
%% ASN1DIR is the corpus folder tests/corpus/asn1 (with h225/, h235/, h245/).
%% Afterwards run the filter with
%%
%%   erl -noinput -pa OUTDIR -s h323_oracle main
%%
%% and write lines `uuie|ras|h245|olc HEX` to its standard input (see
%% h323_oracle.erl).

main([AsnDir, OutDir]) ->
    ok = filelib:ensure_dir(filename:join(OutDir, "x")),
    %% asn1ct finds an imported module by its file name: the files are copied
    %% under their module names.
    Sources = [{"h235/H235-SECURITY-MESSAGES.asn", "H235-SECURITY-MESSAGES"},
               {"h245/MULTIMEDIA-SYSTEM-CONTROL-h245v13.asn", "MULTIMEDIA-SYSTEM-CONTROL"},
               {"h225/H323-MESSAGES-h2250v6.asn", "H323-MESSAGES"}],
    lists:foreach(
      fun({Src, Module}) ->
              Dst = filename:join(OutDir, Module ++ ".asn"),
              {ok, _} = file:copy(filename:join(AsnDir, Src), Dst)
      end, Sources),
    Options = [per, undec_rest, {outdir, OutDir}, {i, OutDir}, noobj],
    lists:foreach(
      fun({_, Module}) ->
              case asn1ct:compile(filename:join(OutDir, Module), Options) of
                  ok -> ok;
                  Error -> fail("asn1ct:compile ~s: ~p", [Module, Error])
              end,
              compile_erl(filename:join(OutDir, Module ++ ".erl"), OutDir)
      end, Sources),
    Here = filename:dirname(escript:script_name()),
    compile_erl(filename:join(Here, "h323_oracle.erl"), OutDir),
    io:format("built ~s~n", [OutDir]);
main(_) ->
    fail("usage: build.escript ASN1DIR OUTDIR", []).

compile_erl(File, OutDir) ->
    case compile:file(File, [{outdir, OutDir}, {i, OutDir}, report_errors,
                             report_warnings, return_errors]) of
        {ok, _} -> ok;
        Error -> fail("compile ~s: ~p", [File, Error])
    end.

fail(Format, Args) ->
    io:format(standard_error, Format ++ "~n", Args),
    halt(1).
