%% Proxies and tunnels (issue 12): gunmetal:connect/2,3,4 as Gun's
%% gun:connect through tinyproxy, SOCKS5 through microsocks (protocols
%% [socks] + socks_opts), gun_tunnel_up messages as Gun's, and info/1's
%% intermediaries and origin_*. The proxies (Debian's, installed by make
%% deps) are started by the tests on 127.0.0.1 on a port picked here, and
%% die with the port that runs them. The examples of Gun's manual page
%% gun:connect(3) run with `gun` changed to `gunmetal` (the proxy and the
%% origin are ours).
-module(gunmetal_tunnel_tests).
-include_lib("eunit/include/eunit.hrl").

port() -> list_to_integer(os:getenv("GM_HTTP_PORT")).
tls_port() -> list_to_integer(os:getenv("GM_HTTPS_PORT")).
ca() -> os:getenv("GM_CA").

%% ---- proxies

free_port() ->
	{ok, L} = gen_tcp:listen(0, [{ip, {127,0,0,1}}]),
	{ok, P} = inet:port(L),
	ok = gen_tcp:close(L),
	P.

%% Runs Exe Args under sh, which kills it when the port's stdin closes
%% (port_close, or this VM going away). Returns {Port, ListenPort}.
spawn_proxy(Exe, Args, ListenPort) ->
	Path = os:find_executable(Exe),
	?assert(is_list(Path)), % make deps installs it
	Port = open_port({spawn_executable, "/bin/sh"},
		[{args, ["-c", "\"$0\" \"$@\" >/dev/null 2>&1 & p=$!; read _; kill $p; wait", Path | Args]},
		 binary, exit_status]),
	wait_listen(ListenPort, 200),
	{Port, ListenPort}.

wait_listen(P, 0) -> error({proxy_not_listening, P});
wait_listen(P, N) ->
	case gen_tcp:connect({127,0,0,1}, P, [], 1000) of
		{ok, S} -> gen_tcp:close(S);
		_ -> timer:sleep(50), wait_listen(P, N - 1)
	end.

stop_proxy({Port, _}) ->
	catch port_close(Port),
	ok.

tinyproxy() -> tinyproxy(none).
tinyproxy(Auth) ->
	P = free_port(),
	Dir = string:trim(os:cmd("mktemp -d /tmp/gm-erl-tinyproxy.XXXXXX")),
	Conf = filename:join(Dir, "tinyproxy.conf"),
	ok = file:write_file(Conf, [io_lib:format("Port ~b\nListen 127.0.0.1\nTimeout 60\nMaxClients 100\n"
		"Allow 127.0.0.1\nLogLevel Info\n", [P]),
		case Auth of {U, Pw} -> io_lib:format("BasicAuth ~s ~s\n", [U, Pw]); none -> "" end]),
	spawn_proxy("tinyproxy", ["-d", "-c", Conf], P).

microsocks() -> microsocks(none).
microsocks(Auth) ->
	P = free_port(),
	Args = ["-i", "127.0.0.1", "-p", integer_to_list(P)] ++
		case Auth of {U, Pw} -> ["-u", U, "-P", Pw]; none -> [] end,
	spawn_proxy("microsocks", Args, P).

with(Proxy, Fun) ->
	try Fun(element(2, Proxy)) after stop_proxy(Proxy) end.

headers_seen(ConnPid) ->
	Ref = gunmetal:get(ConnPid, "/headers"),
	{response, nofin, 200, _} = gunmetal:await(ConnPid, Ref),
	{ok, Body} = gunmetal:await_body(ConnPid, Ref),
	Body.

has(Body, Sub) -> binary:match(Body, iolist_to_binary(Sub)) =/= nomatch.

%% ---- CONNECT

connect_http_test() ->
	with(tinyproxy(), fun(PP) ->
		{ok, ConnPid} = gunmetal:open("127.0.0.1", PP, #{retry => 0}),
		{ok, http} = gunmetal:await_up(ConnPid),
		#{intermediaries := []} = gunmetal:info(ConnPid),
		StreamRef = gunmetal:connect(ConnPid, #{host => "127.0.0.1", port => port()}),
		{response, fin, 200, _} = gunmetal:await(ConnPid, StreamRef),
		%% exactly Gun's message
		receive {gun_tunnel_up, ConnPid, StreamRef, Proto} -> ?assertEqual(http, Proto)
		after 5000 -> error(no_tunnel_up) end,
		%% no tunnel option: the connection is the origin's now (Gun's HTTP/1.1)
		Body = headers_seen(ConnPid),
		?assert(has(Body, ["\"host\":\"127.0.0.1:", integer_to_list(port()), "\""])),
		Info = gunmetal:info(ConnPid),
		?assertMatch(#{protocol := http, transport := tcp, origin_scheme := <<"http">>,
			origin_host := "127.0.0.1", intermediaries := [#{type := connect, host := "127.0.0.1",
			port := PP, transport := tcp, protocol := http}]}, Info),
		?assertEqual(port(), maps:get(origin_port, Info)),
		gunmetal:close(ConnPid)
	end).

connect_https_h2_test() ->
	with(tinyproxy(), fun(PP) ->
		{ok, ConnPid} = gunmetal:open("127.0.0.1", PP, #{retry => 0}),
		{ok, http} = gunmetal:await_up(ConnPid),
		StreamRef = gunmetal:connect(ConnPid, #{host => "localhost", port => tls_port(),
			transport => tls, protocols => [http2], tls_opts => [{cacertfile, ca()}]}),
		{response, fin, 200, _} = gunmetal:await(ConnPid, StreamRef),
		{up, http2} = gunmetal:await(ConnPid, StreamRef),
		?assert(has(headers_seen(ConnPid), "\"proto\":\"HTTP/2.0\"")),
		Info = gunmetal:info(ConnPid),
		?assertMatch(#{protocol := http2, transport := tls, origin_scheme := <<"https">>,
			origin_host := "localhost", intermediaries := [#{type := connect, port := PP}]}, Info),
		?assertEqual(tls_port(), maps:get(origin_port, Info)),
		gunmetal:close(ConnPid)
	end).

connect_proxy_auth_test() ->
	with(tinyproxy({"alice", "s3cret"}), fun(PP) ->
		%% retry 1: tinyproxy closes after its 407, and with retry 0 the
		%% connection process may be gone before info/1 (Gun's noproc)
		{ok, C1} = gunmetal:open("127.0.0.1", PP, #{retry => 1}),
		{ok, http} = gunmetal:await_up(C1),
		R1 = gunmetal:connect(C1, #{host => "127.0.0.1", port => port()}),
		%% a refusal is an ordinary response, as Gun's
		{response, nofin, 407, _} = gunmetal:await(C1, R1),
		#{intermediaries := []} = gunmetal:info(C1),
		gunmetal:close(C1),
		{ok, C2} = gunmetal:open("127.0.0.1", PP, #{retry => 0}),
		{ok, http} = gunmetal:await_up(C2),
		R2 = gunmetal:connect(C2, #{host => "127.0.0.1", port => port(),
			username => "alice", password => <<"s3cret">>}),
		{response, fin, 200, _} = gunmetal:await(C2, R2),
		{up, http} = gunmetal:await(C2, R2),
		?assertNot(has(headers_seen(C2), "proxy-authorization")),
		gunmetal:close(C2)
	end).

connect_nested_test() ->
	P2 = tinyproxy(),
	try
		with(tinyproxy(), fun(PP) ->
			{ok, ConnPid} = gunmetal:open("127.0.0.1", PP, #{retry => 0}),
			{ok, http} = gunmetal:await_up(ConnPid),
			R1 = gunmetal:connect(ConnPid, #{host => {127,0,0,1}, port => element(2, P2)}),
			{response, fin, 200, _} = gunmetal:await(ConnPid, R1),
			{up, http} = gunmetal:await(ConnPid, R1),
			R2 = gunmetal:connect(ConnPid, #{host => "localhost", port => tls_port(), transport => tls,
				protocols => [http], tls_opts => [{cacertfile, ca()}]}),
			{response, fin, 200, _} = gunmetal:await(ConnPid, R2),
			{up, http} = gunmetal:await(ConnPid, R2),
			?assert(has(headers_seen(ConnPid), ["\"host\":\"localhost:", integer_to_list(tls_port())])),
			#{intermediaries := [#{port := PP}, #{port := Port2}]} = gunmetal:info(ConnPid),
			?assertEqual(element(2, P2), Port2),
			gunmetal:close(ConnPid)
		end)
	after stop_proxy(P2)
	end.

connect_refusals_test() ->
	with(tinyproxy(), fun(PP) ->
		{ok, ConnPid} = gunmetal:open("127.0.0.1", PP, #{retry => 0}),
		{ok, http} = gunmetal:await_up(ConnPid),
		?assertError({badarg, _}, gunmetal:connect(ConnPid, #{host => "127.0.0.1"})),
		?assertError({badarg, _}, gunmetal:connect(ConnPid, #{host => "127.0.0.1", port => 1, bogus => 1})),
		?assertError({badarg, _}, gunmetal:connect(ConnPid, #{host => "127.0.0.1", port => 1, transport => quic})),
		?assertError({badarg, _}, gunmetal:connect(ConnPid, #{host => "127.0.0.1", port => 1},
			[{<<"content-length">>, <<"0">>}])),
		?assertError({badarg, _}, gunmetal:connect(ConnPid, #{host => "127.0.0.1", port => 1}, [],
			#{tunnel => make_ref()})),
		?assertError({badarg, _}, gunmetal:connect(ConnPid, #{host => self(), port => 1})),
		%% nothing went out: the proxy's first answer is to this CONNECT
		R = gunmetal:connect(ConnPid, #{host => "127.0.0.1", port => port()}),
		{response, fin, 200, _} = gunmetal:await(ConnPid, R),
		{up, http} = gunmetal:await(ConnPid, R),
		gunmetal:close(ConnPid)
	end),
	%% CONNECT needs an HTTP connection: on raw, gun_error on the stream
	{ok, Raw} = gunmetal:open("127.0.0.1", port(), #{protocols => [raw], retry => 0}),
	{ok, raw} = gunmetal:await_up(Raw),
	R2 = gunmetal:connect(Raw, #{host => "127.0.0.1", port => port()}),
	{error, {stream_error, {unsupported, Msg}}} = gunmetal:await(Raw, R2),
	?assert(has(Msg, "HTTP connection")),
	gunmetal:close(Raw).

%% ---- SOCKS5

socks_test() ->
	with(microsocks(), fun(SP) ->
		{ok, ConnPid} = gunmetal:open("127.0.0.1", SP, #{retry => 0, protocols => [socks],
			socks_opts => #{host => "127.0.0.1", port => port()}}),
		{ok, socks} = gunmetal:await_up(ConnPid),
		%% Gun's undefined StreamRef
		receive {gun_tunnel_up, ConnPid, undefined, Proto} -> ?assertEqual(http, Proto)
		after 5000 -> error(no_tunnel_up) end,
		?assert(has(headers_seen(ConnPid), ["\"host\":\"127.0.0.1:", integer_to_list(port())])),
		Info = gunmetal:info(ConnPid),
		?assertMatch(#{intermediaries := [#{type := socks5, host := "127.0.0.1", port := SP,
			transport := tcp, protocol := socks}], origin_host := "127.0.0.1"}, Info),
		?assertEqual(port(), maps:get(origin_port, Info)),
		gunmetal:close(ConnPid)
	end).

%% Gun's protocol() also takes {socks, socks_opts()} in protocols.
socks_in_protocols_test() ->
	with(microsocks({"bob", "hunter22"}), fun(SP) ->
		{ok, ConnPid} = gunmetal:open("127.0.0.1", SP, #{retry => 0, protocols => [{socks, #{
			host => "127.0.0.1", port => port(), auth => [{username_password, "bob", "hunter22"}]}}]}),
		{ok, socks} = gunmetal:await_up(ConnPid),
		{up, http} = gunmetal:await(ConnPid, undefined),
		?assert(has(headers_seen(ConnPid), ["\"host\":\"127.0.0.1:", integer_to_list(port())])),
		gunmetal:close(ConnPid)
	end).

socks_auth_tls_test() ->
	with(microsocks({"bob", "hunter22"}), fun(SP) ->
		{ok, ConnPid} = gunmetal:open("127.0.0.1", SP, #{retry => 0, protocols => [socks],
			socks_opts => #{host => "localhost", port => tls_port(),
				auth => [{username_password, "bob", "hunter22"}],
				transport => tls, tls_opts => [{cacertfile, ca()}]}}),
		{ok, socks} = gunmetal:await_up(ConnPid),
		{up, http2} = gunmetal:await(ConnPid, undefined),
		?assert(has(headers_seen(ConnPid), "\"proto\":\"HTTP/2.0\"")),
		#{origin_scheme := <<"https">>, transport := tls} = gunmetal:info(ConnPid),
		gunmetal:close(ConnPid)
	end).

socks_auth_refused_test() ->
	with(microsocks({"bob", "hunter22"}), fun(SP) ->
		{ok, ConnPid} = gunmetal:open("127.0.0.1", SP, #{retry => 0, protocols => [socks],
			socks_opts => #{host => "127.0.0.1", port => port(),
				auth => [{username_password, "bob", "wrong"}]}}),
		{ok, socks} = gunmetal:await_up(ConnPid),
		%% the proxy's refusal, "socks: ..." as {socks, Detail}
		receive {gun_down, ConnPid, socks, Reason, []} -> ?assertMatch({socks, _}, Reason)
		after 5000 -> error(no_down) end
	end).

%% ---- Gun's manual, gun:connect(3), module name changed

%% The proxy is tinyproxy on 127.0.0.1 instead of proxy.example.org:1080;
%% origin-server.example.org is the test server.
manual_establish_a_tunnel_test() ->
	with(tinyproxy(), fun(PP) ->
		{ok, ConnPid} = gunmetal:open("127.0.0.1", PP),
		{ok, http} = gunmetal:await_up(ConnPid),
		StreamRef = gunmetal:connect(ConnPid, #{
		    host => "127.0.0.1",
		    port => port()
		}),
		{response, fin, 200, _} = gunmetal:await(ConnPid, StreamRef),
		%% Subsequent requests will be sent to origin-server.example.org.
		{up, http} = gunmetal:await(ConnPid, StreamRef),
		?assertMatch(#{intermediaries := [_]}, gunmetal:info(ConnPid)),
		gunmetal:close(ConnPid)
	end).

manual_tunnel_for_a_secure_http2_connection_test() ->
	with(tinyproxy(), fun(PP) ->
		{ok, ConnPid} = gunmetal:open("127.0.0.1", PP),
		{ok, http} = gunmetal:await_up(ConnPid),
		StreamRef = gunmetal:connect(ConnPid, #{
		    host => "localhost",
		    port => tls_port(),
		    protocols => [http2],
		    transport => tls,
		    tls_opts => [{cacertfile, ca()}]
		}),
		{response, fin, 200, _} = gunmetal:await(ConnPid, StreamRef),
		%% Subsequent requests will be sent to origin-server.example.org.
		{up, http2} = gunmetal:await(ConnPid, StreamRef),
		gunmetal:close(ConnPid)
	end).

manual_tunnel_using_proxy_authorization_test() ->
	with(tinyproxy({"essen", "myrealpasswordis"}), fun(PP) ->
		{ok, ConnPid} = gunmetal:open("127.0.0.1", PP),
		{ok, http} = gunmetal:await_up(ConnPid),
		StreamRef = gunmetal:connect(ConnPid, #{
		    host => "127.0.0.1",
		    port => port(),
		    username => "essen",
		    password => "myrealpasswordis"
		}),
		{response, fin, 200, _} = gunmetal:await(ConnPid, StreamRef),
		%% Subsequent requests will be sent to origin-server.example.org.
		{up, http} = gunmetal:await(ConnPid, StreamRef),
		gunmetal:close(ConnPid)
	end).
