// Neo4j Community, embedded, with its Bolt connector on a given port: what kgcelery's
// kafka-neo4j stack runs (kgcelery/embedded/jvm_stack.py). Compiled at first use against
// the jars that kgcelery/embedded/maven.py resolves.
//
//   java -cp <classes>:<neo4j jars> KgNeo4j <home> <bolt port> [<page cache MB>]
//
// Authentication is off: the server listens on 127.0.0.1 only. SIGTERM shuts the
// databases down cleanly (the shutdown hook), so the store is never left to recover.

import java.nio.file.Path;
import java.time.Duration;
import org.neo4j.configuration.GraphDatabaseInternalSettings;
import org.neo4j.configuration.GraphDatabaseSettings;
import org.neo4j.configuration.connectors.BoltConnector;
import org.neo4j.configuration.helpers.SocketAddress;
import org.neo4j.dbms.api.DatabaseManagementService;
import org.neo4j.dbms.api.DatabaseManagementServiceBuilder;

public final class KgNeo4j {
    private KgNeo4j() {}

    public static void main(String[] args) throws Exception {
        if (args.length < 2) {
            System.err.println("usage: KgNeo4j <home> <bolt port> [<page cache MB>]");
            System.exit(2);
        }
        Path home = Path.of(args[0]);
        int bolt = Integer.parseInt(args[1]);
        long pageCacheMb = args.length > 2 ? Long.parseLong(args[2]) : 256;
        DatabaseManagementService dbms = new DatabaseManagementServiceBuilder(home)
                .setConfig(BoltConnector.enabled, true)
                .setConfig(BoltConnector.listen_address, new SocketAddress("127.0.0.1", bolt))
                .setConfig(BoltConnector.encryption_level, BoltConnector.EncryptionLevel.DISABLED)
                .setConfig(GraphDatabaseSettings.auth_enabled, false)
                .setConfig(GraphDatabaseSettings.pagecache_memory, pageCacheMb * 1024 * 1024)
                // A graph that grows from empty would be replanned again and again as its
                // statistics change; kgcelery's statements seek by constraint indexes.
                .setConfig(GraphDatabaseSettings.cypher_min_replan_interval, Duration.ofMinutes(10))
                // One plan per statement, not one per size of its list parameters
                // (internal.cypher.use_parameter_size): a batch's rows per label vary from 1
                // to 500, and each new size was planned again (0.2-0.3 s each; the first
                // batch of a new client's resources took 1-2 s). Its plans seek by the same
                // constraint indexes whatever the size (docs/GRAPH.md).
                .setConfig(GraphDatabaseInternalSettings.cypher_size_hint_parameters, false)
                .build();
        Runtime.getRuntime().addShutdownHook(new Thread(dbms::shutdown, "kg-neo4j-shutdown"));
        System.out.println("KgNeo4j: Bolt on 127.0.0.1:" + bolt);
        System.out.flush();
        Thread.currentThread().join();
    }
}
