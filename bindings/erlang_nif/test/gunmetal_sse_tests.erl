%% Server-sent events: Gun's content_handlers (gun_sse_h, gun_data_h) give
%% Gun's {gun_sse, ConnPid, StreamRef, Event | fin} messages, against the
%% test server's /sse (tests/testserver SSEStream), as Gun's sse_SUITE does
%% against Cowboy. Needs the test server (run_tests.sh exports GM_HTTP_PORT).
-module(gunmetal_sse_tests).
-include_lib("eunit/include/eunit.hrl").

port() -> list_to_integer(os:getenv("GM_HTTP_PORT")).

open(Opts, Proto) ->
	{ok, C} = gunmetal:open("127.0.0.1", port(), Opts#{retry => 0}),
	{ok, Proto} = gunmetal:await_up(C),
	C.

%% What /sse gives, as Gun's messages: the retry alone is no message of
%% Gun's; an id alone is the map with last_event_id only.
want() -> [
	#{last_event_id => <<>>, event_type => <<"message">>, data => <<"first\nsecond">>},
	#{last_event_id => <<"7">>, event_type => <<"tick">>, data => <<"x">>},
	#{last_event_id => <<"8">>},
	#{last_event_id => <<"8">>, event_type => <<"message">>, data => <<"after">>},
	fin
].

events(C, R) ->
	receive
		{gun_sse, C, R, fin} -> [fin];
		{gun_sse, C, R, Ev} -> [Ev|events(C, R)];
		{gun_data, C, R, _, _} = Other -> error({unexpected, Other})
	after 5000 -> error(timeout)
	end.

clock(C) ->
	R = gunmetal:get(C, "/sse", [{<<"accept">>, <<"text/event-stream">>}]),
	receive
		{gun_response, C, R, nofin, 200, Headers} ->
			{_, <<"text/event-stream">>} = lists:keyfind(<<"content-type">>, 1, Headers)
	after 5000 -> error(timeout)
	end,
	?assertEqual(want(), events(C, R)),
	%% Other bodies stay gun_data (gun_data_h).
	R2 = gunmetal:get(C, "/sse?ct=text/plain"),
	{response, nofin, 200, _} = gunmetal:await(C, R2),
	{ok, <<16#EF, 16#BB, 16#BF, ": hello", _/binary>>} = gunmetal:await_body(C, R2),
	gunmetal:close(C).

http_clock_test() ->
	clock(open(#{http_opts => #{content_handlers => [gun_sse_h, gun_data_h]}}, http)).

http2_clock_test() ->
	clock(open(#{protocols => [http2], http2_opts => #{content_handlers => [gun_sse_h, gun_data_h]}}, http2)).

with_options_test() ->
	clock(open(#{http_opts => #{content_handlers => [{gun_sse_h, #{max_event_size => 1000}}, gun_data_h]}}, http)).

per_request_test() ->
	C = open(#{}, http),
	R = gunmetal:get(C, "/sse", [], #{content_handlers => [gun_sse_h]}),
	{response, nofin, 200, _} = gunmetal:await(C, R),
	?assertEqual(want(), events(C, R)),
	%% The connection's own: gun_data_h.
	R2 = gunmetal:get(C, "/sse"),
	{response, nofin, 200, _} = gunmetal:await(C, R2),
	{ok, <<16#EF, 16#BB, 16#BF, _/binary>>} = gunmetal:await_body(C, R2),
	gunmetal:close(C).

%% A handler module of the user's own is refused when it is not loadable,
%% or mixed with gun_sse_h (run by the engine) on one stream.
own_handler_refused_test() ->
	?assertMatch({error, {options, {http, {content_handlers, [my_handler_h]}}}},
		gunmetal:open("127.0.0.1", port(), #{http_opts => #{content_handlers => [my_handler_h]}})),
	?assertMatch({error, {options, {http2, {content_handlers, []}}}},
		gunmetal:open("127.0.0.1", port(), #{http2_opts => #{content_handlers => []}})),
	C = open(#{}, http),
	{'EXIT', {{badarg, Msg}, _}} = (catch gunmetal:get(C, "/sse", [], #{content_handlers => [gun_sse_h, gunmetal_upper_h]})),
	?assertNotEqual(nomatch, binary:match(Msg, <<"cannot mix">>)),
	{'EXIT', {{badarg, Msg1}, _}} = (catch gunmetal:get(C, "/sse", [], #{content_handlers => [no_such_h, gun_data_h]})),
	?assertNotEqual(nomatch, binary:match(Msg1, <<"no_such_h is not loaded">>)),
	{'EXIT', {{badarg, Msg2}, _}} = (catch gunmetal:get(C, "/sse", [],
		#{content_handlers => [{gun_sse_h, #{max_event_size => 0}}]})),
	?assertNotEqual(nomatch, binary:match(Msg2, <<"max_event_size">>)),
	gunmetal:close(C).

%% A handler module of the user's own runs in ConnPid with Gun's contract:
%% gun_response first, then init(ReplyTo, StreamRef, Status, Headers, Opts),
%% then each body piece through handle/3 down the chain to gun_data_h, whose
%% gun_data messages carry ConnPid; trailers come as they are.
own_handler(Proto) ->
	C = open(#{protocols => [Proto]}, Proto),
	R = gunmetal:get(C, "/trailers", [{<<"te">>, <<"trailers">>}],
		#{content_handlers => [gunmetal_upper_h, gun_data_h]}),
	receive {gun_response, C, R, nofin, 200, _} -> ok after 5000 -> error(timeout) end,
	%% init runs in ConnPid, after gun_response was sent.
	receive {upper_init, C, R, 200, true} -> ok after 5000 -> error(no_init) end,
	?assertEqual(<<"HELLO TRAILERS">>, body(C, R, <<>>)),
	%% disable: the handler drops out of the chain for this status.
	R2 = gunmetal:get(C, "/trailers", [{<<"te">>, <<"trailers">>}],
		#{content_handlers => [{gunmetal_upper_h, #{status => 404}}, gun_data_h]}),
	receive {upper_init, C, R2, 200, true} -> ok after 5000 -> error(no_init) end,
	?assertEqual(<<"hello trailers">>, body(C, R2, <<>>)),
	%% The connection's own handlers still apply to other requests.
	R3 = gunmetal:get(C, "/sse?ct=text/plain"),
	{ok, <<16#EF, 16#BB, 16#BF, ": hello", _/binary>>} = gunmetal:await_body(C, R3),
	gunmetal:close(C).

body(C, R, Acc) ->
	receive
		{gun_data, C, R, nofin, D} -> body(C, R, <<Acc/binary, D/binary>>);
		{gun_data, C, R, fin, D} -> <<Acc/binary, D/binary>>;
		{gun_trailers, C, R, T} ->
			{_, <<"abc123">>} = lists:keyfind(<<"x-checksum">>, 1, T),
			Acc;
		{gun_response, C, R, _, _, _} -> body(C, R, Acc)
	after 5000 -> error({timeout, Acc})
	end.

own_handler_http_test() ->
	own_handler(http).

own_handler_http2_test() ->
	own_handler(http2).

%% The connection's own chain (http_opts/http2_opts content_handlers) runs
%% for every request without req_opts content_handlers, also with a
%% reply_to fun; a request's own list replaces it, as in Gun.
conn_handler(Proto) ->
	Key = case Proto of http -> http_opts; http2 -> http2_opts end,
	C = open(#{protocols => [Proto], Key => #{content_handlers => [gunmetal_upper_h, gun_data_h]}}, Proto),
	R = gunmetal:get(C, "/trailers", [{<<"te">>, <<"trailers">>}]),
	receive {upper_init, C, R, 200, true} -> ok after 5000 -> error(no_init) end,
	?assertEqual(<<"HELLO TRAILERS">>, body(C, R, <<>>)),
	Self = self(),
	R2 = gunmetal:get(C, "/trailers", [], #{reply_to => fun(M) -> Self ! {via_fun, M} end}),
	receive {via_fun, {upper_init, C, R2, 200, true}} -> ok after 5000 -> error(no_fun_init) end,
	receive {via_fun, {gun_data, C, R2, _, <<"HELLO TRAILERS">>}} -> ok after 5000 -> error(no_fun_data) end,
	R3 = gunmetal:get(C, "/trailers", [], #{content_handlers => [gun_data_h]}),
	{response, nofin, 200, _} = gunmetal:await(C, R3),
	{ok, <<"hello trailers">>, _} = gunmetal:await_body(C, R3),
	receive {upper_init, _, R3, _, _} = Bad -> error({unexpected, Bad}) after 0 -> ok end,
	%% A body over 64 KiB (sent by ConnPid) on such a connection.
	R4 = gunmetal:post(C, "/echo", [], binary:copy(<<"a">>, 100000)),
	receive {upper_init, C, R4, 200, true} -> ok after 5000 -> error(no_init) end,
	?assertEqual(binary:copy(<<"A">>, 100000), body(C, R4, <<>>)),
	gunmetal:close(C).

conn_handler_http_test() ->
	conn_handler(http).

conn_handler_http2_test() ->
	conn_handler(http2).

conn_handler_refused_test() ->
	?assertMatch({error, {options, {http, {content_handlers, [gun_sse_h, gunmetal_upper_h]}}}},
		gunmetal:open("127.0.0.1", port(), #{http_opts => #{content_handlers => [gun_sse_h, gunmetal_upper_h]}})).

%% A crash in a handler ends the connection, as in Gun.
own_handler_crash_test() ->
	C = open(#{}, http),
	MRef = monitor(process, C),
	_ = gunmetal:get(C, "/trailers", [], #{content_handlers => [{gunmetal_upper_h, #{crash => true}}]}),
	receive {'DOWN', MRef, process, C, _} -> ok after 5000 -> error(still_up) end.

%% Cookies (gunmetal's extension): info/1 names the store when cookie_store
%% is on; cookies/1 exports it with gun_cookies' keys and set_cookies/2
%% seeds another connection's store, whose requests then send the cookie.
cookies_test() ->
	C0 = open(#{}, http),
	?assertMatch(#{cookie_store := undefined}, gunmetal:info(C0)),
	?assertMatch({error, {badstate, _}}, gunmetal:cookies(C0)),
	gunmetal:close(C0),
	C = open(#{cookie_store => {gun_cookies_list, #{}}}, http),
	?assertEqual({gunmetal, C}, maps:get(cookie_store, gunmetal:info(C))),
	{ok, []} = gunmetal:cookies(C),
	R = gunmetal:get(C, "/set-cookie?name=sid&value=abc&path=/"),
	{response, nofin, 200, _} = gunmetal:await(C, R),
	{ok, <<"ok">>} = gunmetal:await_body(C, R),
	{ok, [Cookie]} = gunmetal:cookies(C),
	?assertMatch(#{name := <<"sid">>, value := <<"abc">>, domain := <<"127.0.0.1">>, path := <<"/">>,
		host_only := true, secure_only := false, http_only := false, same_site := default,
		expiry_time := infinity, persistent := false}, Cookie),
	gunmetal:close(C),
	C2 = open(#{cookie_store => {gun_cookies_list, #{}}}, http),
	Tomorrow = calendar:system_time_to_universal_time(erlang:system_time(second) + 86400, second),
	ok = gunmetal:set_cookies(C2, [Cookie, #{name => <<"two">>, value => <<"2">>,
		domain => <<"127.0.0.1">>, expiry_time => Tomorrow}]),
	{ok, Got} = gunmetal:cookies(C2),
	?assertMatch([#{name := <<"sid">>}, #{name := <<"two">>, expiry_time := Tomorrow, persistent := true}],
		lists:sort(Got)),
	R2 = gunmetal:get(C2, "/headers"),
	{response, nofin, 200, _} = gunmetal:await(C2, R2),
	{ok, Body} = gunmetal:await_body(C2, R2),
	?assertNotEqual(nomatch, binary:match(Body, <<"sid=abc">>)),
	?assertNotEqual(nomatch, binary:match(Body, <<"two=2">>)),
	%% Bad input: an error naming it, and nothing taken.
	?assertMatch({error, {badarg, _}}, gunmetal:set_cookies(C2, [#{name => <<"x">>, value => <<"y">>}])),
	{'EXIT', {{badarg, {cookie, colour, red}}, _}} = (catch gunmetal:set_cookies(C2, [#{colour => red}])),
	{ok, Got} = gunmetal:cookies(C2),
	gunmetal:close(C2).
