#!/usr/bin/env escript
%%! -noshell
%% W1 from Erlang: one connection, 100 concurrent streams, 100-byte GETs,
%% through gunmetal's Gun API. Prints requests/s (not a test: a figure).
%%
%%   bench_w1.escript [Options]
%%     --host H         (127.0.0.1)       --port P      (required unless --server)
%%     --tls            TLS (ALPN h2)     --ca FILE     CA for --tls (else verify_none)
%%     --protocol P     http2 | http      (http2)
%%     --path PATH      (/bytes/100)      --streams N   (100)
%%     --seconds S      (5)               --warmup S    (1)
%%     --server DIR     start DIR/testserver and use it (prints its address)
%%
%% W1 needs HTTP/2 (100 concurrent streams on one connection); with
%% --protocol http the same load runs as 100 pipelined HTTP/1.1 requests.
%% Erlang is looked up from this script's directory (ebin/, priv/): run
%% `make LIB=.../libgunmetal.so` there first.
-mode(compile).

main(Args) ->
	Opts = parse(Args, #{host => "127.0.0.1", port => undefined, tls => false, ca => undefined,
		protocol => http2, path => "/bytes/100", streams => 100, seconds => 5, warmup => 1,
		server => undefined}),
	Here = filename:dirname(filename:absname(escript:script_name())),
	true = code:add_patha(filename:join(Here, "ebin")),
	{Opts1, Server} = maybe_server(Opts),
	try run(Opts1)
	after stop_server(Server)
	end.

parse([], O) -> O;
parse(["--host", H|T], O) -> parse(T, O#{host => H});
parse(["--port", P|T], O) -> parse(T, O#{port => list_to_integer(P)});
parse(["--tls"|T], O) -> parse(T, O#{tls => true});
parse(["--ca", F|T], O) -> parse(T, O#{ca => F});
parse(["--protocol", P|T], O) -> parse(T, O#{protocol => list_to_atom(P)});
parse(["--path", P|T], O) -> parse(T, O#{path => P});
parse(["--streams", N|T], O) -> parse(T, O#{streams => list_to_integer(N)});
parse(["--seconds", N|T], O) -> parse(T, O#{seconds => list_to_integer(N)});
parse(["--warmup", N|T], O) -> parse(T, O#{warmup => list_to_integer(N)});
parse(["--server", D|T], O) -> parse(T, O#{server => D});
parse([Other|_], _) -> io:format(standard_error, "unknown argument ~s~n", [Other]), halt(2).

maybe_server(O = #{server := undefined, port := undefined}) ->
	io:format(standard_error, "give --port or --server DIR~n", []), halt(2), {O, undefined};
maybe_server(O = #{server := undefined}) -> {O, undefined};
maybe_server(O = #{server := Dir, tls := TLS}) ->
	Port = open_port({spawn_executable, filename:join(Dir, "testserver")}, [{line, 4096}, binary]),
	Line = receive {Port, {data, {eol, L}}} -> L after 10000 -> error(no_server) end,
	io:format("test server: ~s~n", [Line]),
	Num = fun(K) -> {match, [V]} = re:run(Line, <<"\"", K/binary, "\":([0-9]+)">>, [{capture, all_but_first, list}]), list_to_integer(V) end,
	{match, [CA]} = re:run(Line, <<"\"ca\":\"([^\"]*)\"">>, [{capture, all_but_first, list}]),
	P = case TLS of true -> Num(<<"https">>); false -> Num(<<"http">>) end,
	{O#{port => P, host => case TLS of true -> "localhost"; false -> "127.0.0.1" end,
		ca => case O of #{ca := undefined} -> CA; _ -> maps:get(ca, O) end}, Port}.

stop_server(undefined) -> ok;
stop_server(Port) -> catch port_close(Port), ok.

run(#{host := Host, port := Port, tls := TLS, ca := CA, protocol := Proto, path := Path,
		streams := N, seconds := Secs, warmup := Warm}) ->
	ConnOpts0 = #{protocols => [Proto], retry => 0},
	ConnOpts = case TLS of
		true ->
			TLSOpts = case CA of
				undefined -> [{verify, verify_none}];
				_ -> [{verify, verify_peer}, {cacertfile, CA}]
			end,
			ConnOpts0#{transport => tls, tls_opts => TLSOpts};
		false ->
			ConnOpts0
	end,
	{ok, C} = gunmetal:open(Host, Port, ConnOpts),
	case gunmetal:await_up(C, 10000) of
		{ok, Proto} -> ok;
		Other ->
			io:format("W1 erlang gunmetal: cannot run: await_up gave ~p (wanted ~p)~n", [Other, Proto]),
			halt(1)
	end,
	MRef = monitor(process, C),
	_ = [gunmetal:get(C, Path) || _ <- lists:seq(1, N)],
	_ = loop(C, Path, MRef, now_ms() + Warm * 1000, 0),
	T0 = erlang:monotonic_time(microsecond),
	C0 = proc_cpu(),
	Done = loop(C, Path, MRef, now_ms() + Secs * 1000, 0),
	T1 = erlang:monotonic_time(microsecond),
	C1 = proc_cpu(),
	Rate = Done * 1000000 / (T1 - T0),
	io:format("W1 erlang gunmetal (~p, ~b streams, ~s): ~b requests in ~.2f s: ~b requests/s~n",
		[Proto, N, Path, Done, (T1 - T0) / 1000000, round(Rate)]),
	%% For bench/harness: CPU (user + sys, every thread of the VM and the
	%% library) over the measured loop.
	io:format("RESULT n=~b s=~.6f cpu=~.6f~n", [Done, (T1 - T0) / 1000000, C1 - C0]),
	gunmetal:close(C).

%% User + sys seconds of this OS process (/proc/self/stat, clock ticks of
%% 1/100 s on Linux).
proc_cpu() ->
	{ok, B} = file:read_file("/proc/self/stat"),
	[_, AfterComm] = binary:split(B, <<") ">>),
	Fields = binary:split(AfterComm, <<" ">>, [global]),
	(binary_to_integer(lists:nth(12, Fields)) + binary_to_integer(lists:nth(13, Fields))) / 100.

now_ms() -> erlang:monotonic_time(millisecond).

%% Keeps N requests in flight: each finished response starts another.
loop(C, Path, MRef, Deadline, Done) ->
	receive
		{gun_data, C, _, fin, _} ->
			next(C, Path, MRef, Deadline, Done);
		{gun_response, C, _, fin, _, _} ->
			next(C, Path, MRef, Deadline, Done);
		{gun_response, C, _, nofin, _, _} ->
			loop(C, Path, MRef, Deadline, Done);
		{gun_data, C, _, nofin, _} ->
			loop(C, Path, MRef, Deadline, Done);
		{gun_error, C, _, Reason} ->
			io:format(standard_error, "stream error: ~p~n", [Reason]),
			next(C, Path, MRef, Deadline, Done);
		{'DOWN', MRef, process, C, Reason} ->
			io:format(standard_error, "connection down: ~p~n", [Reason]),
			halt(1);
		_ ->
			loop(C, Path, MRef, Deadline, Done)
	end.

next(C, Path, MRef, Deadline, Done) ->
	_ = gunmetal:get(C, Path),
	case Done band 255 =:= 0 andalso now_ms() >= Deadline of
		true -> Done + 1;
		false -> loop(C, Path, MRef, Deadline, Done + 1)
	end.
